"""numpy / scipy peer worker for benchmark/cpu.js: one JSON request per stdin line, one JSON reply per line.

node keeps this process open for the whole run so the numpy peer can be timed interleaved with tessera
and ORT (round by round), which keeps ratios honest on a machine whose speed drifts. Requests:
  {"op": "info"}                                         -> numpy / OpenBLAS / scipy facts
  {"op": "setup", "id", "kind": "gemm", "M", "K", "N"}   fp32 a @ b (OpenBLAS sgemm)
  {"op": "setup", "id", "kind": "csr", "M", "K", "N", "files": {rowPtr, colIdx, values}}
                                                         scipy CSR @ dense, the CSR arrays read from raw
                                                         little-endian files node wrote (the same matrix)
  {"op": "run", "id", "n"}                               -> {"t": seconds for n back-to-back calls}
  {"op": "drop", "id"}
Thread count and the OpenBLAS env (OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed) are set by node.
"""
import ctypes
import glob
import json
import os
import sys
import time

import numpy as np


def blas_info():
    info = {"numpy": np.__version__}
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        info["blas"] = {k: blas.get(k) for k in ("name", "version", "openblas configuration")}
    except Exception as e:  # older numpy: show_config has no mode
        info["blas_error"] = str(e)
    # runtime facts straight from the bundled OpenBLAS (threadpoolctl is not installed here)
    libdir = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in glob.glob(os.path.join(libdir, "*openblas*.so*")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_get_corename64_", "openblas_get_corename64_", "openblas_get_corename"):
            if hasattr(lib, name):
                core = getattr(lib, name)
                core.restype = ctypes.c_char_p
                info["openblas_core"] = core().decode()
                threads = getattr(lib, name.replace("corename", "num_threads"), None)
                if threads is not None:
                    info["openblas_threads"] = threads()
                break
    info["env"] = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    try:
        import scipy

        info["scipy"] = scipy.__version__
    except ImportError:
        info["scipy"] = None
    return info


def setup(c):
    rng = np.random.default_rng(1)
    if c["kind"] == "gemm":
        a = rng.standard_normal((c["M"], c["K"]), dtype=np.float32)
        b = rng.standard_normal((c["K"], c["N"]), dtype=np.float32)
        return (lambda: a @ b), {}
    if c["kind"] == "csr":
        import scipy.sparse as sp

        f = c["files"]
        row_ptr = np.fromfile(f["rowPtr"], dtype=np.int32)
        col_idx = np.fromfile(f["colIdx"], dtype=np.int32)
        values = np.fromfile(f["values"], dtype=np.float32)
        a = sp.csr_matrix((values, col_idx, row_ptr), shape=(c["M"], c["K"]))
        b = rng.standard_normal((c["K"], c["N"]), dtype=np.float32)
        return (lambda: a @ b), {"nnz": int(a.nnz)}
    raise ValueError(f"unknown kind {c['kind']}")


def main():
    fns = {}
    for line in sys.stdin:
        req = json.loads(line)
        try:
            op = req["op"]
            if op == "info":
                reply = blas_info()
            elif op == "setup":
                fns[req["id"]], reply = setup(req)
            elif op == "run":
                fn = fns[req["id"]]
                t0 = time.perf_counter()
                for _ in range(req.get("n", 1)):
                    fn()
                reply = {"t": time.perf_counter() - t0}
            elif op == "drop":
                fns.pop(req["id"], None)
                reply = {}
            else:
                raise ValueError(f"unknown op {op}")
        except Exception as e:  # report, keep serving
            reply = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
