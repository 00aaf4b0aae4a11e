"""Compiles the CUDA C kept in Sources/FlexServeCUDA with NVRTC, as the engine does at run time, on a machine
without a GPU (NVRTC needs no driver), and prints each kernel's registers, spills and shared memory.

    pip install nvidia-cuda-nvrtc-cu12 nvidia-cuda-cuobjdump
    python3 tools/cuda/nvrtc_check.py [--arch sm_90] [Sources/FlexServeCUDA/Kernels/*Source.swift]
"""
import argparse, ctypes, glob, os, re, subprocess, sys, tempfile

def find(pattern):
    import site
    for base in site.getsitepackages() + [site.getusersitepackages()]:
        hits = glob.glob(os.path.join(base, pattern), recursive=True)
        if hits:
            return sorted(hits)[0]
    return None

parser = argparse.ArgumentParser()
parser.add_argument("--arch", default="sm_90")
parser.add_argument("files", nargs="*")
args = parser.parse_args()
files = args.files or sorted(glob.glob(os.path.join(os.path.dirname(__file__), "../../Sources/FlexServeCUDA/Kernels/*Source.swift")))
lib = ctypes.CDLL(find("nvidia/cuda_nvrtc/lib/libnvrtc.so.*") or "libnvrtc.so")
cuobjdump = find("nvidia/**/bin/cuobjdump")
failed = False
for path in files:
    text = open(path).read()
    # The kernel source is the Swift raw string `#""" ... """#` (options as KernelCompiler passes them).
    m = re.search(r'#"""\n(.*?)"""#', text, re.S)
    if not m:
        continue
    source = m.group(1).encode()
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), source, os.path.basename(path).encode(), 0, None, None) == 0
    opts = [f"--gpu-architecture={args.arch}".encode(), b"--std=c++17", b"-default-device"]
    rc = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    print(f"== {path}: {'ok' if rc == 0 else 'FAILED'}")
    if log.value.strip():
        print(log.value.decode())
    if rc != 0:
        failed = True
        continue
    lib.nvrtcGetCUBINSize(prog, ctypes.byref(size))
    cubin = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetCUBIN(prog, cubin)
    if cuobjdump:
        with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
            f.write(cubin.raw)
            f.flush()
            out = subprocess.run([cuobjdump, "--dump-resource-usage", f.name], capture_output=True, text=True).stdout
            for line in out.splitlines():
                if "Function" in line or "REG" in line:
                    print("  " + line.strip())
            if os.environ.get("SASS"):
                print(subprocess.run([cuobjdump, "--dump-sass", f.name], capture_output=True, text=True).stdout)
sys.exit(1 if failed else 0)
