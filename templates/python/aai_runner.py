"""algocloud worker: loads aai_main.py once and serves calls from the inference server.

The server starts this file as `python -u aai_runner.py` with the algorithm's folder as
the working directory. Requests arrive on fd 3 and replies leave on fd 4, as frames:

    uint32 header length, uint64 payload length (both big-endian),
    header (UTF-8 JSON object), payload (raw bytes)

Tensors cross as raw little-endian C-order bytes (header: dtype, shape), JSON values as
UTF-8 JSON, bytes as they are. stdout and stderr belong to the algorithm: the server
logs them. docs/inference-protocol.md is the full description.
"""

import importlib
import inspect
import json
import os
import signal
import struct
import sys
import traceback

REQ_FD, REP_FD = 3, 4
PREFIX = struct.Struct(">IQ")
MAX_HEADER = 1 << 20
MODULE = "aai_main"
TENSOR_KINDS = "biuf"  # bool, signed, unsigned, float

np = None  # imported in main so that a missing numpy is reported like any init error


class OutputError(Exception):
    """predict (or testing_input_data) returned a value the API type cannot carry."""


def read_exact(f, n):
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = f.readinto(view[got:])
        if not k:
            raise EOFError("server closed the request pipe")
        got += k
    return buf


def read_frame(f):
    """Returns (header, payload), or None when the server closed the pipe between frames."""
    first = f.read(1)
    if not first:
        return None
    prefix = first + bytes(read_exact(f, PREFIX.size - 1))
    hlen, plen = PREFIX.unpack(prefix)
    if hlen > MAX_HEADER:
        raise ValueError("frame header of %d bytes exceeds the limit" % hlen)
    header = json.loads(bytes(read_exact(f, hlen)))
    # A bytearray keeps the payload writable, so predict may modify its input in place.
    return header, read_exact(f, plen)


def write_all(f, data):
    view = memoryview(data).cast("B")
    while len(view):
        n = f.write(view)
        view = view[n:]


def write_frame(f, header, payload=b""):
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    write_all(f, PREFIX.pack(len(h), len(memoryview(payload).cast("B"))) + h)
    write_all(f, payload)


def json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return list(o)
    raise TypeError(
        "%s is not JSON serializable: return dicts, lists, strings, numbers, booleans, "
        "None, numpy scalars or numpy arrays" % type(o).__name__)


def as_array(value):
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "__array_interface__") or hasattr(value, "__array__") or isinstance(value, (list, tuple)):
        return np.asarray(value)  # PIL images, lists of numbers
    raise OutputError("expected a numpy array, got %s" % type(value).__name__)


def to_wire(value, want):
    """Encodes value as the wire kind the server asked for; returns (header fields, payload)."""
    if want == "json":
        try:
            text = json.dumps(value, default=json_default, allow_nan=False, ensure_ascii=False)
        except ValueError as e:
            raise OutputError("the value holds NaN or Infinity, which JSON cannot carry: %s" % e) from None
        except TypeError as e:
            raise OutputError(str(e)) from None
        return {"kind": "json"}, text.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"kind": "bytes"}, value
    if want == "tensor":
        arr = as_array(value)
        if arr.dtype.kind not in TENSOR_KINDS:
            raise OutputError("arrays of dtype %s cannot be sent: use bool, integer or float arrays" % arr.dtype)
        little = arr.dtype.newbyteorder("<")
        if arr.dtype != little:
            arr = arr.astype(little)
        arr = np.ascontiguousarray(arr)
        return {"kind": "tensor", "dtype": arr.dtype.name, "shape": list(arr.shape)}, arr.reshape(-1).view(np.uint8)
    raise OutputError("the server asked for an unknown kind %r" % want)


def from_wire(header, payload):
    kind = header.get("kind")
    if kind == "tensor":
        dtype = np.dtype(header["dtype"]).newbyteorder("<")
        return np.frombuffer(payload, dtype=dtype).reshape(header["shape"])
    if kind == "json":
        return json.loads(bytes(payload))
    if kind == "bytes":
        return bytes(payload)
    return None


def format_tb(e):
    """The traceback without this runner's own frames: the author's code starts it."""
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(e), e, tb))


def send_error(f, rid, stage, e):
    body = {"type": type(e).__name__, "message": str(e) or type(e).__name__,
            "traceback": format_tb(e), "stage": stage}
    write_frame(f, {"id": rid, "op": "error", "kind": "json"}, json.dumps(body).encode("utf-8"))


def find_class(mod):
    """The class named AAI, or else the only class defined in aai_main.py with a predict method."""
    cls = getattr(mod, "AAI", None)
    if inspect.isclass(cls):
        return cls
    found = [c for _, c in inspect.getmembers(mod, inspect.isclass)
             if c.__module__ == mod.__name__ and callable(getattr(c, "predict", None))]
    if len(found) == 1:
        return found[0]
    if not found:
        raise RuntimeError("aai_main.py defines no class with a predict method: define class AAI "
                           "with __init__(self), predict(self, x) and testing_input_data(self)")
    raise RuntimeError("aai_main.py defines several classes with a predict method (%s): name the one "
                       "to serve AAI" % ", ".join(sorted(c.__name__ for c in found)))


def serve(req, rep, obj):
    while True:
        frame = read_frame(req)
        if frame is None:
            return
        header, payload = frame
        rid, op = header.get("id", 0), header.get("op")
        stage = op
        try:
            if op == "predict":
                x = from_wire(header, payload)
                del payload
                y = obj.predict(x)
            elif op == "test_input":
                fn = getattr(obj, "testing_input_data", None)
                if fn is None:
                    raise AttributeError("%s has no testing_input_data(self) method" % type(obj).__name__)
                y = fn()
            else:
                raise ValueError("unknown op %r" % op)
            stage = "output" if op == "predict" else op + "_output"
            fields, out = to_wire(y, header.get("want", "json"))
        except BaseException as e:  # SystemExit and KeyboardInterrupt from user code too: keep serving
            send_error(rep, rid, stage, e)
            continue
        write_frame(rep, dict(fields, id=rid, op="result"), out)


def main():
    # The server drains on SIGINT itself; user subprocesses must not inherit the protocol pipes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.set_inheritable(REQ_FD, False)
    os.set_inheritable(REP_FD, False)
    req = open(REQ_FD, "rb", buffering=0)
    rep = open(REP_FD, "wb", buffering=0)
    try:
        global np
        import numpy
        np = numpy
        sys.path.insert(0, os.getcwd())
        mod = importlib.import_module(MODULE)
        cls = find_class(mod)
        obj = cls()
    except BaseException as e:
        send_error(rep, 0, "init", e)
        return 1
    write_frame(rep, {"id": 0, "op": "ready", "class": cls.__name__})
    serve(req, rep, obj)
    return 0


if __name__ == "__main__":
    sys.exit(main())
