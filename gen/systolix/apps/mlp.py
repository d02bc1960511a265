"""A real classifier through the engine: sklearn's digits, a float MLP, post-training int8.

The flow (all deterministic for a given seed):

1. :func:`load_digits_split`: sklearn's 8x8 digits (1,797 images, 10 classes, shipped with
   scikit-learn, no download), pixels 0..16 scaled to [0, 1], split stratified into 1,437 training
   and 360 held-out images.
2. :func:`train_float_mlp`: a 64-64-10 ReLU MLP (``sklearn.neural_network.MLPClassifier``, Adam,
   seeded, one BLAS thread), about a second on one core.
3. :func:`quantize_mlp`: post-training quantization in TFLite's integer-only scheme:

   * weights int8, symmetric per output channel: ``s_w[n] = max_k |W[k, n]| / 127``,
     ``W_q = round(W / s_w)`` in ``[-127, 127]``, zero point 0 (``s_w[n]`` is raised to
     ``|b[n]| / (s_in * 2**30)`` if smaller, so that a dead unit's bias still fits int32; 1.0 for
     an all-zero channel);
   * activations int8, asymmetric per tensor, calibrated on the training set (min/max of the
     float model's tensor, widened to include 0): ``s = (max - min) / 255``,
     ``zp = round(-128 - min / s)``; ``q = clamp(round(x / s) + zp, -128, 127)``;
   * biases int32 at scale ``s_in * s_w[n]``: ``b_q[n] = round(b[n] / (s_in * s_w[n]))``;
   * the input zero point is folded into the bias, ``bias'[n] = b_q[n] - zp_in * sum_k W_q[k, n]``,
     so the engine computes only raw int8 x int8 GEMMs: ``sum_k (x_q - zp_in) W_q + b_q
     = sum_k x_q W_q + bias'``;
   * per channel ``M0[n], shift[n] = quantize_multiplier(s_in * s_w[n] / s_out)``;
   * hidden layer: ReLU as ``clamp_min = zp_out`` (:func:`systolix.model.quant.relu_clamp`);
   * output layer: int8 logits at one per-tensor scale, prediction ``argmax`` (ties to the lowest
     index). A common output scale is needed: with per-channel weight scales the int32
     accumulators of different classes are at different scales and cannot be compared directly.
4. :meth:`QuantizedMLP.infer`: layer by layer, ``out = gemm_requant(a_q, W_q, params)``, where
   ``gemm_requant`` is injected: :func:`reference_gemm_requant` (``golden.gemm`` with the default
   int32 wrapping ``Numerics`` then :func:`systolix.model.quant.requantize`), or one that runs the RTL.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..model import golden
from ..config import Numerics
from ..model.quant import (INT32_MAX, INT32_MIN, RequantParams, quantize_multiplier, relu_clamp,
                           requantize)

__all__ = ["DigitsSplit", "FloatMLP", "QuantizedLayer", "QuantizedMLP", "Inference",
           "load_digits_split", "train_float_mlp", "quantize_mlp", "reference_gemm_requant",
           "digits_model", "accuracy_report", "DEFAULT_SEED", "TEST_SIZE", "HIDDEN"]

DEFAULT_SEED = 0
#: Largest seed: scikit-learn takes random states 0..2**32 - 1.
MAX_SEED = 2**32 - 1
#: Held-out images (of 1,797); the other 1,437 train the model and calibrate the quantization.
TEST_SIZE = 360
#: Hidden layer widths of the classifier.
HIDDEN = (64,)

QMIN, QMAX = -128, 127


@dataclass(frozen=True, eq=False)
class DigitsSplit:
    """Digits images (float64 in [0, 1], shape (n, 64)) and labels (int64), train and test."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits_split(seed=DEFAULT_SEED, test_size=TEST_SIZE):
    """sklearn's digits, scaled to [0, 1] (pixel / 16), split stratified with ``seed``.

    Parameters
    ----------
    seed : int
        ``random_state`` of ``train_test_split``.
    test_size : int
        Number of held-out images, 10..1787.

    Returns
    -------
    DigitsSplit
    """
    _check_int("seed", seed, 0, MAX_SEED)
    _check_int("test_size", test_size, 10, 1787)
    # scikit-learn takes ~1.5 s to import: only the commands that train pay for it
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype(np.float64) / 16.0
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, random_state=seed,
                                              stratify=y)
    return DigitsSplit(*(_frozen(v) for v in (x_tr, y_tr, x_te, y_te)))


@dataclass(frozen=True, eq=False)
class FloatMLP:
    """A trained float MLP: ``weights[i]`` (K x N) and ``biases[i]`` (N), ReLU between layers."""

    weights: tuple
    biases: tuple

    def activations(self, x):
        """Every layer's output for ``x`` (n, 64): hidden layers after ReLU, then the logits."""
        outs = []
        a = np.asarray(x, dtype=np.float64)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            a = a @ w + b
            if i < len(self.weights) - 1:
                a = np.maximum(a, 0.0)
            outs.append(a)
        return outs

    def predict(self, x):
        """Class predictions (argmax of the logits, ties to the lowest index)."""
        return np.argmax(self.activations(x)[-1], axis=1)


def train_float_mlp(split: DigitsSplit, hidden=HIDDEN, seed=DEFAULT_SEED, max_iter=300):
    """Train the float MLP deterministically (``random_state=seed``, one BLAS thread).

    Adam, ReLU, L2 ``alpha=1e-4``, ``max_iter`` epochs (scikit-learn's convergence warning, if
    any, is silenced: the epoch budget is the recipe).

    Returns
    -------
    FloatMLP
    """
    _check_int("seed", seed, 0, MAX_SEED)
    _check_int("max_iter", max_iter, 1)
    hidden = tuple(hidden)
    for h in hidden:
        _check_int("hidden layer width", h, 1)
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    clf = MLPClassifier(hidden_layer_sizes=hidden, activation="relu", solver="adam", alpha=1e-4,
                        max_iter=max_iter, random_state=seed)
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(split.x_train, split.y_train)
    return FloatMLP(tuple(_frozen(w.astype(np.float64)) for w in clf.coefs_),
                    tuple(_frozen(b.astype(np.float64)) for b in clf.intercepts_))


def _act_qparams(lo, hi):
    """Asymmetric int8 (scale, zero_point) for a float range (widened to include 0)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi == lo:
        return 1.0, 0
    scale = (hi - lo) / (QMAX - QMIN)
    zp = int(np.clip(_round_half_away(QMIN - lo / scale), QMIN, QMAX))
    return scale, zp


def _round_half_away(x):
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _quantize(x, scale, zp):
    q = _round_half_away(np.asarray(x, dtype=np.float64) / scale) + zp
    return np.clip(q, QMIN, QMAX).astype(np.int8)


@dataclass(frozen=True, eq=False)
class QuantizedLayer:
    """One quantized layer: ``out = requantize(in_q @ weights, params)``.

    Attributes
    ----------
    weights : numpy.ndarray, (K, N) int8
        Symmetric per output channel, in ``[-127, 127]``.
    bias : numpy.ndarray, (N,) int64
        The int32 bias at scale ``in_scale * weight_scales[n]``, *before* folding the input zero
        point (``params.bias`` holds the folded one).
    params : RequantParams
        Folded bias, per-channel ``M0``/shift, output zero point and clamp.
    in_scale, in_zero_point : float, int
        Quantization of this layer's input.
    weight_scales : numpy.ndarray, (N,) float64
    out_scale, out_zero_point : float, int
        Quantization of this layer's output.
    relu : bool
        The layer has a fused ReLU (``params.clamp_min == out_zero_point``).
    """

    weights: np.ndarray
    bias: np.ndarray
    params: RequantParams
    in_scale: float
    in_zero_point: int
    weight_scales: np.ndarray
    out_scale: float
    out_zero_point: int
    relu: bool

    @property
    def macs(self):
        """Multiply-accumulates per input row (K * N)."""
        return int(self.weights.shape[0] * self.weights.shape[1])


class Inference(NamedTuple):
    """Result of :meth:`QuantizedMLP.infer`."""

    #: (M,) int64 class predictions: argmax of the int8 logits, ties to the lowest index.
    predictions: np.ndarray
    #: One int8 (M, N_i) array per layer, the last being the logits.
    layer_outputs: list


def reference_gemm_requant(a_q, w_q, params: RequantParams):
    """The integer reference of a layer: ``requantize(golden.gemm(a_q, w_q, Numerics()), params)``.

    ``golden.gemm`` with the default ``Numerics`` (int8 operands, int32 wrapping accumulator) is
    exactly what every generated engine computes; the requantization is :func:`requantize`.
    """
    return requantize(golden.gemm(a_q, w_q, Numerics()), params)


@dataclass(frozen=True, eq=False)
class QuantizedMLP:
    """An int8 MLP: input quantization plus a chain of :class:`QuantizedLayer`."""

    input_scale: float
    input_zero_point: int
    layers: tuple

    def quantize_input(self, x):
        """Float images (n, 64) -> int8 (n, 64): ``clamp(round(x / s) + zp, -128, 127)``.

        ``round`` is half away from zero (as TFLite).
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.layers[0].weights.shape[0]:
            raise ValueError(f"x must have shape (n, {self.layers[0].weights.shape[0]}), "
                             f"not {x.shape}")
        return _quantize(x, self.input_scale, self.input_zero_point)

    @property
    def macs_per_inference(self):
        """Multiply-accumulates per image (sum of K * N over the layers)."""
        return sum(layer.macs for layer in self.layers)

    def gemm_shapes(self, batch):
        """The engine jobs of one batch: ``[(M, K, N), ...]`` per layer, with ``M = batch``."""
        _check_int("batch", batch, 1)
        return [(batch, *layer.weights.shape) for layer in self.layers]

    def infer(self, x_q, gemm_requant=reference_gemm_requant, max_rows=None):
        """Run int8 images through the layers with an injected GEMM + requantization.

        Parameters
        ----------
        x_q : array_like, (M, K0) int8
            Quantized images (:meth:`quantize_input`).
        gemm_requant : callable
            ``gemm_requant(a_q, w_q, params) -> (M', N) int8 array`` for ``a_q`` (M', K) int8,
            ``w_q`` (K, N) int8 and a :class:`RequantParams`. Default
            :func:`reference_gemm_requant`; pass one that runs the RTL engine to compare.
        max_rows : int or None
            If given, each layer is computed in row batches of at most ``max_rows`` (the engine's
            ``max_m``); the results are concatenated.

        Returns
        -------
        Inference
            Predictions and every layer's int8 output.

        Raises
        ------
        TypeError
            ``gemm_requant`` is not callable or returns something other than a numpy array of
            the layer's output dtype.
        ValueError
            ``x_q`` has the wrong shape or values outside int8, or ``gemm_requant`` returns the
            wrong shape.
        """
        if not callable(gemm_requant):
            raise TypeError(f"gemm_requant must be callable, not {gemm_requant!r}")
        if max_rows is not None:
            _check_int("max_rows", max_rows, 1)
        a = np.asarray(x_q)
        if not np.issubdtype(a.dtype, np.integer):
            raise TypeError(f"x_q must hold integers, not {a.dtype}")
        k0 = self.layers[0].weights.shape[0]
        if a.ndim != 2 or a.shape[1] != k0:
            raise ValueError(f"x_q must have shape (M, {k0}), not {a.shape}")
        if a.size and (a.min() < QMIN or a.max() > QMAX):
            raise ValueError("x_q must hold int8 values")
        a = a.astype(np.int8)
        outs = []
        for i, layer in enumerate(self.layers):
            step = max_rows or max(1, a.shape[0])
            parts = []
            for r0 in range(0, a.shape[0], step):
                got = gemm_requant(a[r0:r0 + step], layer.weights, layer.params)
                want_shape = (min(step, a.shape[0] - r0), layer.params.channels)
                if not isinstance(got, np.ndarray) or got.dtype != layer.params.out_dtype:
                    what = (f"an array of {got.dtype}" if isinstance(got, np.ndarray)
                            else type(got).__name__)
                    raise TypeError(f"layer {i}: gemm_requant must return a numpy "
                                    f"{layer.params.out_dtype} array, not {what}")
                if got.shape != want_shape:
                    raise ValueError(f"layer {i}: gemm_requant returned shape {got.shape}, "
                                     f"expected {want_shape}")
                parts.append(got)
            a = np.concatenate(parts, axis=0) if parts else np.zeros((0, layer.params.channels),
                                                                      dtype=np.int8)
            outs.append(a)
        return Inference(np.argmax(a, axis=1).astype(np.int64), outs)


def quantize_mlp(model: FloatMLP, calibration):
    """Post-training int8 quantization of ``model`` (see the module docstring for the scheme).

    Parameters
    ----------
    model : FloatMLP
    calibration : array_like, (n, 64) float
        Images whose float activations set every activation range (the training set).

    Returns
    -------
    QuantizedMLP

    Raises
    ------
    ValueError
        A folded bias outside int32, or a real multiplier ``s_in * s_w / s_out`` not in (0, 1)
        (from :func:`systolix.model.quant.quantize_multiplier`).
    """
    calibration = np.asarray(calibration, dtype=np.float64)
    acts = model.activations(calibration)
    in_scale, in_zp = _act_qparams(calibration.min(), calibration.max())
    s_in, zp_in = in_scale, in_zp
    layers = []
    for i, (w, b) in enumerate(zip(model.weights, model.biases)):
        last = i == len(model.weights) - 1
        # s_w = absmax / 127, but never so small that the bias needs more than 2**30 steps: a
        # dead unit (weights decayed to ~1e-15 by L2) would otherwise overflow the int32 bias.
        # Its weights then quantize to 0, which is what they are.
        s_w = np.maximum(np.abs(w).max(axis=0) / 127.0, np.abs(b) / (s_in * 2.0**30))
        s_w = np.where(s_w > 0, s_w, 1.0)
        w_q = np.clip(_round_half_away(w / s_w), -127, 127).astype(np.int8)
        b_q = _round_half_away(b / (s_in * s_w)).astype(np.int64)
        folded = b_q - zp_in * w_q.astype(np.int64).sum(axis=0)
        if (folded < INT32_MIN).any() or (folded > INT32_MAX).any() or \
                (b_q < INT32_MIN).any() or (b_q > INT32_MAX).any():
            raise ValueError(f"layer {i}: a bias does not fit int32")
        s_out, zp_out = _act_qparams(acts[i].min(), acts[i].max())
        m0s, shifts = zip(*(quantize_multiplier(float(s_in * s / s_out)) for s in s_w))
        cmin, cmax = (None, None) if last else relu_clamp(zp_out)
        params = RequantParams(bias=folded, multiplier=m0s, shift=shifts, zero_point=zp_out,
                               clamp_min=cmin, clamp_max=cmax, out_signed=True)
        layers.append(QuantizedLayer(_frozen(w_q), _frozen(b_q), params, float(s_in), int(zp_in),
                                     _frozen(s_w), float(s_out), int(zp_out), not last))
        s_in, zp_in = s_out, zp_out
    return QuantizedMLP(float(in_scale), int(in_zp), tuple(layers))


@functools.lru_cache(maxsize=4)
def digits_model(seed=DEFAULT_SEED):
    """The split, the trained float model and its int8 version for ``seed`` (cached in memory).

    Returns
    -------
    (DigitsSplit, FloatMLP, QuantizedMLP)
    """
    split = load_digits_split(seed)
    model = train_float_mlp(split, seed=seed)
    return split, model, quantize_mlp(model, split.x_train)


def accuracy_report(seed=DEFAULT_SEED, gemm_requant=reference_gemm_requant, max_rows=None):
    """Held-out accuracies of the float model and of the int8 model through ``gemm_requant``.

    Returns
    -------
    dict
        ``test_images``, ``float_accuracy``, ``int8_accuracy`` (through ``gemm_requant``),
        ``float_int8_agreement`` (fraction of identical predictions), ``macs_per_inference``,
        ``layers`` (list of ``"KxN"``), ``seed``.
    """
    split, model, qmodel = digits_model(seed)
    float_pred = model.predict(split.x_test)
    result = qmodel.infer(qmodel.quantize_input(split.x_test), gemm_requant, max_rows)
    return {
        "seed": seed,
        "test_images": int(len(split.y_test)),
        "float_accuracy": float(np.mean(float_pred == split.y_test)),
        "int8_accuracy": float(np.mean(result.predictions == split.y_test)),
        "float_int8_agreement": float(np.mean(result.predictions == float_pred)),
        "macs_per_inference": qmodel.macs_per_inference,
        "layers": [f"{l.weights.shape[0]}x{l.weights.shape[1]}" for l in qmodel.layers],
    }


def _frozen(a):
    a = np.array(a)
    a.setflags(write=False)
    return a


def _check_int(name, value, lo, hi=None):
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        span = f"at least {lo}" if hi is None else f"in range {lo}..{hi}"
        raise ValueError(f"{name} must be {span}, not {value}")


if __name__ == "__main__":  # pragma: no cover - a quick look: python -m systolix.apps.mlp
    print(accuracy_report())
