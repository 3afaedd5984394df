"""algocloud worker: loads aai_main.py once and serves calls from the inference server.

The server starts this file as `python -u aai_runner.py` with the algorithm's folder as
the working directory. Requests arrive on fd 3 and replies leave on fd 4, as frames:

    uint32 header length, uint64 payload length (both big-endian),
    header (UTF-8 JSON object), payload (raw bytes)

Tensors cross as raw little-endian C-order bytes (header: dtype, shape), JSON values as
UTF-8 JSON, bytes as they are, files as their bytes (header: name, content_type), encoded
images (JPEG) as their file bytes, which this runner decodes with Pillow exactly as the
author's own Image.open(f).convert("RGB") would (header: format, shape). A batch
is consecutive predict frames, the first carrying "batch": n; it goes to the class's
predict_batch(list) in one call. stdout and stderr belong to the algorithm: the server logs
them. A request carrying "capture_logs": true also gets, in its reply header's "logs", what the
algorithm wrote to sys.stdout and sys.stderr while it ran (its last LOGS_MAX bytes; a batch's
requests share the batch's). docs/inference-protocol.md is the full description.
"""

import importlib
import inspect
import io
import json
import os
import signal
import struct
import sys
import threading
import traceback

REQ_FD, REP_FD = 3, 4
PREFIX = struct.Struct(">IQ")
MAX_HEADER = 1 << 20
MODULE = "aai_main"
TENSOR_DTYPES = ("bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
                 "float16", "float32", "float64")

np = None  # imported in main so that a missing numpy is reported like any init error
PILImage = None  # PIL.Image, imported at the first encoded image (JPEG inputs only)

# The code folder (the working directory) and the venv, as the server laid them out, e.g.
# /srv/algocloud/servers/<id>/code/3 and .../venv: errors and tracebacks that callers and the
# wizard show name files relative to the code folder, never the platform's paths.
CODE_DIRS = sorted({d.rstrip(os.sep) + os.sep for d in (os.getcwd(), os.path.realpath(os.getcwd()))
                    if d.rstrip(os.sep)}, key=len, reverse=True)  # never "/" alone
VENV_DIRS = sorted({d.rstrip(os.sep) + os.sep for d in (sys.prefix, os.path.realpath(sys.prefix))
                    if d.rstrip(os.sep) and sys.prefix != sys.base_prefix}, key=len, reverse=True)

# Import names whose pip distribution is named otherwise, for the hint after a
# ModuleNotFoundError.
PIP_NAMES = {"skimage": "scikit-image", "cv2": "opencv-python-headless", "sklearn": "scikit-learn",
             "PIL": "Pillow", "yaml": "PyYAML", "bs4": "beautifulsoup4", "dateutil": "python-dateutil",
             "google.protobuf": "protobuf", "Crypto": "pycryptodome", "attr": "attrs"}


LOGS_MAX = 64 << 10  # bytes of a request's logs kept: the end, where the failure usually is
LOGS_DROPPED = "[earlier output dropped]\n"


class LogCapture:
    """Copies what the algorithm writes to sys.stdout or sys.stderr into the logs of the request
    being served, while still passing it on to the real stream (the server logs it). A worker
    serves one request (or one batch) at a time, so whatever any thread of the algorithm writes
    meanwhile belongs to it; each worker process has its own capture, so the server's workers
    never mix their requests' logs. Output written to the file descriptors directly (C
    extensions, subprocesses) reaches the server's log only."""

    def __init__(self):
        self._lock = threading.Lock()
        self._chunks = None  # list of str while a request asked for logs, else None
        self._size = 0
        self._dropped = False

    def start(self, wanted):
        with self._lock:
            self._chunks, self._size, self._dropped = ([] if wanted else None), 0, False

    def add(self, text):
        with self._lock:
            if self._chunks is None or not text:
                return
            self._chunks.append(text)
            self._size += len(text)
            while self._size > LOGS_MAX and len(self._chunks) > 1:  # keep the end, bounded
                self._size -= len(self._chunks.pop(0))
                self._dropped = True

    def stop(self):
        """Ends the capture; returns the request's logs (None when it asked for none)."""
        with self._lock:
            chunks, dropped, self._chunks = self._chunks, self._dropped, None
        if chunks is None:
            return None
        data = "".join(chunks).encode("utf-8", "replace")
        if len(data) > LOGS_MAX:
            data, dropped = data[-LOGS_MAX:], True
        text = data.decode("utf-8", "ignore")  # a character cut at the start is dropped
        return LOGS_DROPPED + text if dropped else text


LOGS = LogCapture()


class TeeStream:
    """sys.stdout or sys.stderr: writes go to the real stream and to the request's logs."""

    def __init__(self, stream, capture):
        self._stream = stream
        self._capture = capture

    def write(self, s):
        n = self._stream.write(s)
        if isinstance(s, str):
            self._capture.add(s)
        return n

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __getattr__(self, name):  # flush, fileno, encoding, isatty, buffer...
        return getattr(self._stream, name)


class OutputError(Exception):
    """predict (or testing_input_data) returned a value the API type cannot carry."""


class DecodeError(Exception):
    """The client's encoded image could not be decoded: the client's mistake, not the algorithm's."""


class AAIFile:
    """A file: predict's argument for file inputs. predict may return one too (or any
    object with .name and .data, or a (name, data) tuple) for file outputs."""

    __slots__ = ("name", "data", "content_type")

    def __init__(self, name, data, content_type=None):
        self.name = name  # str: the client's file name, reduced to its last path element
        self.data = data  # bytes
        self.content_type = content_type  # str, e.g. "text/csv"

    def __repr__(self):
        return "AAIFile(name=%r, data=<%d bytes>, content_type=%r)" % (
            self.name, len(self.data), self.content_type)


SPARE_MIN = 1 << 20
_spare = None  # the last big tensor buffer, reused once nothing holds it any more


def tensor_buffer(n):
    """A writable uint8 array of n bytes for a tensor payload. np.empty, unlike
    bytearray(n), skips zeroing memory that is overwritten at once (numpy asks
    for huge pages too). A big buffer is reused when the previous call left no
    reference to it (predict did not keep its input), which also spares the
    page faults of fresh memory: about 7 ms per 48 MiB here."""
    global _spare
    buf, _spare = _spare, None
    if buf is None or buf.size != n or sys.getrefcount(buf) != 2:  # 2: buf and the argument
        buf = np.empty(n, np.uint8)
    if n >= SPARE_MIN:
        _spare = buf
    return buf


def read_exact(f, n, tensor=False):
    buf = tensor_buffer(n) if tensor and n else bytearray(n)
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
    # The payload stays writable (numpy array or bytearray), so predict may modify its input in place.
    return header, read_exact(f, plen, header.get("kind") == "tensor")


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
    if (hasattr(value, "__array_interface__") or hasattr(value, "__array__")
            or isinstance(value, (list, tuple, int, float, bool, np.generic))):
        return np.asarray(value)  # PIL images, lists of numbers, numpy and Python scalars
    raise OutputError("expected a numpy array, got %s" % type(value).__name__)


def as_file(value):
    """(name, data), (name, data, content_type), {"name", "data"}, an object with .name and
    .data (an AAIFile), or bare bytes (the server names them): returns (header fields, data)."""
    ct = None
    if isinstance(value, (bytes, bytearray, memoryview)):
        name, data = "", value
    elif isinstance(value, (tuple, list)) and len(value) in (2, 3):
        name, data = value[0], value[1]
        ct = value[2] if len(value) == 3 else None
    elif isinstance(value, dict) and "name" in value and "data" in value:
        name, data, ct = value["name"], value["data"], value.get("content_type")
    elif hasattr(value, "name") and hasattr(value, "data"):
        name, data, ct = value.name, value.data, getattr(value, "content_type", None)
    else:
        raise OutputError("expected a file: return (name, data) with data bytes or str, or an object "
                          "with .name and .data; got %s" % type(value).__name__)
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    if not isinstance(name, str):
        raise OutputError("the file name must be a str, got %s" % type(name).__name__)
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise OutputError("the file data must be bytes (or str), got %s" % type(data).__name__)
    if ct is not None and not isinstance(ct, str):
        raise OutputError("the file's content_type must be a str, got %s" % type(ct).__name__)
    fields = {"kind": "file", "name": name}
    if ct:
        fields["content_type"] = ct
    return fields, data


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
    if want == "file":
        return as_file(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"kind": "bytes"}, value
    if want == "tensor":
        arr = as_array(value)
        if arr.dtype.name not in TENSOR_DTYPES:
            raise OutputError("arrays of dtype %s cannot be sent: use one of %s (e.g. x.astype(np.float64))"
                              % (arr.dtype, ", ".join(TENSOR_DTYPES)))
        little = arr.dtype.newbyteorder("<")
        if arr.dtype != little:
            arr = arr.astype(little)
        if not arr.flags.c_contiguous:
            arr = arr.copy(order="C")  # np.ascontiguousarray would turn a 0-d array 1-d
        return {"kind": "tensor", "dtype": arr.dtype.name, "shape": list(arr.shape)}, arr.reshape(-1).view(np.uint8)
    raise OutputError("the server asked for an unknown kind %r" % want)


def decode_image(header, payload):
    """An encoded image (JPEG) as the HxWx3 uint8 RGB array predict gets, decoded by Pillow
    exactly as Image.open(f).convert("RGB") does (libjpeg-turbo): the author's own run and the
    endpoint then see the same pixels. The server checked the size against its pixel limit."""
    global PILImage
    if PILImage is None:
        from PIL import Image
        Image.MAX_IMAGE_PIXELS = None  # the server's max_pixels bounds the size, from the header
        PILImage = Image
    try:
        # Only the format the server checked (its size included): no other decoder sees the bytes.
        with PILImage.open(io.BytesIO(payload), formats=[str(header.get("format", "jpeg")).upper()]) as im:
            rgb = im.convert("RGB")
        arr = np.array(rgb)  # a writable copy, like every other input
    except Exception as e:
        raise DecodeError("%s: %s" % (type(e).__name__, e)) from None
    shape = header.get("shape")
    if shape and list(arr.shape) != list(shape):
        raise DecodeError("the image decoded as %s, its header said %s" % (list(arr.shape), shape))
    return arr


def from_wire(header, payload):
    kind = header.get("kind")
    if kind == "image":
        return decode_image(header, payload)
    if kind == "tensor":
        dtype = np.dtype(header["dtype"]).newbyteorder("<")
        if isinstance(payload, np.ndarray):  # np.empty from read_exact: a view, no copy
            return payload.view(dtype).reshape(header.get("shape") or ())
        return np.frombuffer(payload, dtype=dtype).reshape(header.get("shape") or ())
    if kind == "json":
        return json.loads(bytes(payload))
    if kind == "bytes":
        return bytes(payload)
    if kind == "file":
        return AAIFile(header.get("name", ""), bytes(payload), header.get("content_type") or "application/octet-stream")
    return None


def relative_paths(text):
    """text with the code folder's path removed (aai_main.py, not /srv/.../code/3/aai_main.py)
    and the venv's shown as venv/."""
    for d in CODE_DIRS:
        text = text.replace(d, "")
    for d in VENV_DIRS:
        text = text.replace(d, "venv" + os.sep)
    return text


def format_tb(e):
    """The traceback without this runner's own frames or the import machinery's: the
    author's code starts it."""
    tb = e.__traceback__
    while tb is not None and (tb.tb_frame.f_code.co_filename == __file__
                              or tb.tb_frame.f_code.co_filename.startswith("<frozen importlib")):
        tb = tb.tb_next
    return relative_paths("".join(traceback.format_exception(type(e), e, tb)))


def pip_hint(e):
    """For a module that is not installed: which requirement to add."""
    if not isinstance(e, ModuleNotFoundError) or not e.name or e.name == MODULE:
        return ""
    top = e.name.split(".")[0]
    pkg = PIP_NAMES.get(e.name) or PIP_NAMES.get(top) or top
    return "add %s to aai_pip-requirements.txt" % pkg


def with_logs(header, logs):
    if logs is not None:
        header["logs"] = logs
    return header


def send_error(f, rid, stage, e, logs=None):
    """An error reply. stage names what failed: import (of aai_main.py), class (finding the
    class to serve), init (__init__), test_input (testing_input_data), predict, output or
    test_input_output (encoding the value for the API type), decode (the client's image)."""
    if stage == "import" and isinstance(e, ModuleNotFoundError) and e.name == MODULE:
        e = ModuleNotFoundError("the code folder has no aai_main.py")
    body = {"type": type(e).__name__, "message": relative_paths(str(e)) or type(e).__name__,
            "traceback": format_tb(e), "stage": stage}
    hint = pip_hint(e)
    if hint:
        body["hint"] = hint
    write_frame(f, with_logs({"id": rid, "op": "error", "kind": "json"}, logs), json.dumps(body).encode("utf-8"))


def find_class(mod):
    """The class named AAI, or else the only class defined in aai_main.py with a predict method."""
    cls = getattr(mod, "AAI", None)
    if inspect.isclass(cls):
        return cls
    found = [c for _, c in inspect.getmembers(mod, inspect.isclass)
             if c.__module__ == mod.__name__
             and (callable(getattr(c, "predict", None)) or callable(getattr(c, "predict_batch", None)))]
    if len(found) == 1:
        return found[0]
    if not found:
        raise RuntimeError("aai_main.py defines no class with a predict method: define class AAI "
                           "with __init__(self), predict(self, x) and testing_input_data(self)")
    raise RuntimeError("aai_main.py defines several classes with a predict method (%s): name the one "
                       "to serve AAI" % ", ".join(sorted(c.__name__ for c in found)))


def answer(rep, header, compute, batch_logs=None):
    """Runs compute() (the value for one request) and writes its reply frame, with the logs
    compute wrote when the request asked for them (batch_logs: a batch's, captured already)."""
    rid, op = header.get("id", 0), header.get("op")
    stage = op
    if batch_logs is None:
        LOGS.start(header.get("capture_logs"))
    try:
        y = compute()
        stage = "output" if op == "predict" else op + "_output"
        fields, out = to_wire(y, header.get("want", "json"))
    except BaseException as e:  # SystemExit and KeyboardInterrupt from user code too: keep serving
        if isinstance(e, OutputError):  # predict_batch([x]) for a lone call returned no single value
            stage = "output" if op == "predict" else op + "_output"
        elif isinstance(e, DecodeError):
            stage = "decode"
        send_error(rep, rid, stage, e, request_logs(header, batch_logs))
        return
    write_frame(rep, with_logs(dict(fields, id=rid, op="result"), request_logs(header, batch_logs)), out)


def request_logs(header, batch_logs):
    """The logs for header's reply: the batch's, or what this request's capture holds."""
    if batch_logs is not None:
        return batch_logs if header.get("capture_logs") else None
    return LOGS.stop()


def run_one(rep, obj, header, payload):
    op = header.get("op")

    def compute():
        if op == "predict":
            x = from_wire(header, payload)  # a DecodeError here is the client's (stage decode)
            if getattr(obj, "predict", None) is None:  # a class with predict_batch only
                return one_of(obj.predict_batch([x]))
            return obj.predict(x)
        if op == "test_input":
            fn = getattr(obj, "testing_input_data", None)
            if fn is None:
                raise AttributeError("%s has no testing_input_data(self) method" % type(obj).__name__)
            return fn()
        raise ValueError("unknown op %r" % op)

    answer(rep, header, compute)


def batch_values(ys, n):
    """Checks that predict_batch returned n values: a list, tuple or array whose first axis is the batch."""
    if not isinstance(ys, (list, tuple)) and not (isinstance(ys, np.ndarray) and ys.ndim > 0):
        raise OutputError("predict_batch must return a list (one value per input), got %s" % type(ys).__name__)
    if len(ys) != n:
        raise OutputError("predict_batch returned %d values for %d inputs" % (len(ys), n))
    return ys


def one_of(ys):
    return batch_values(ys, 1)[0]


def run_batch(rep, obj, frames):
    """A batch of predict requests (one or more): one predict_batch(list) call when
    the class defines it, else predict on each in turn. Replies go out in request order."""
    batch_fn = getattr(obj, "predict_batch", None)
    if batch_fn is None or any(h.get("op") != "predict" for h, _ in frames):
        for header, payload in frames:
            run_one(rep, obj, header, payload)
        return
    # An input that does not decode fails alone; the others still make one batch.
    xs, bad = [], {}
    for i, (h, p) in enumerate(frames):
        try:
            xs.append(from_wire(h, p))
        except DecodeError as e:
            bad[i] = e
    good = [f for i, f in enumerate(frames) if i not in bad]
    ys, err, stage = [], None, None
    LOGS.start(any(h.get("capture_logs") for h, _ in frames))
    if good:
        try:
            ys = list(batch_values(batch_fn(xs), len(good)))
        except BaseException as e:
            err, stage = e, "output" if isinstance(e, OutputError) else "predict"
    logs = LOGS.stop() or ""  # one predict_batch call: its logs go to each request that asked
    for i, (header, _) in enumerate(frames):  # replies in request order
        if i in bad:
            send_error(rep, header.get("id", 0), "decode", bad[i], request_logs(header, logs))
        elif err is not None:
            send_error(rep, header.get("id", 0), stage, err, request_logs(header, logs))
        else:
            y = ys.pop(0)
            answer(rep, header, lambda y=y: y, logs)


def serve(req, rep, obj):
    while True:
        frame = read_frame(req)
        if frame is None:
            return
        header, payload = frame
        n = header.get("batch")
        if n is None:  # a call on its own: predict
            run_one(rep, obj, header, payload)
            del frame, payload
            continue
        frames = [frame]
        del frame, payload
        while len(frames) < n:  # the whole batch is read before any reply is written
            frames.append(read_frame(req))
            if frames[-1] is None:
                raise EOFError("the server closed the request pipe inside a batch")
        run_batch(rep, obj, frames)
        del frames  # lets tensor_buffer reuse the payload


def main():
    # The server drains on SIGINT itself; user subprocesses must not inherit the protocol pipes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.set_inheritable(REQ_FD, False)
    os.set_inheritable(REP_FD, False)
    req = open(REQ_FD, "rb", buffering=0)
    rep = open(REP_FD, "wb", buffering=0)
    sys.stdout = TeeStream(sys.stdout, LOGS)
    sys.stderr = TeeStream(sys.stderr, LOGS)
    stage = "import"
    try:
        global np
        import numpy
        np = numpy
        sys.path.insert(0, os.getcwd())
        mod = importlib.import_module(MODULE)
        stage = "class"
        cls = find_class(mod)
        stage = "init"
        obj = cls()
    except BaseException as e:
        send_error(rep, 0, stage, e)
        return 1
    ready = {"id": 0, "op": "ready", "class": cls.__name__}
    if callable(getattr(obj, "predict_batch", None)):
        ready["predict_batch"] = True
    write_frame(rep, ready)
    serve(req, rep, obj)
    return 0


if __name__ == "__main__":
    sys.exit(main())
