"""Applications built on the engines: the digits MLP, inference in RTL and the demo."""
