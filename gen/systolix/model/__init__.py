"""Pure models, no hardware: the bit-exact golden GEMM, requantization, exact cycle counts, the
tiling of a GEMM into port-level beats, and matrix file I/O."""
