"""A symbolic pickle machine: runs the opcodes of a stream over stand-ins, never over real objects.

The stack and the memo hold, instead of values:

* an ``int`` — the buffer index of the opcode that pushed a plain value (a number, a string,
  bytes, None, an empty list or set …). Nothing is decoded while scanning; a value is read from
  its opcode's bytes only when it matters (:func:`pickle_opcodes.scalar_at`). Pushing the loop's
  own position allocates nothing, which keeps the common opcodes to a table lookup and an append;
* a ``tuple`` of stand-ins (``TUPLE*``);
* a :class:`Dict` (``EMPTY_DICT``/``DICT``) that keeps its first few items (joblib needs them);
* a :class:`Global` — an imported name, already judged;
* an :class:`Obj` — what a call (``REDUCE``, ``NEWOBJ``, ``OBJ``, ``INST`` …) or a persistent id
  returned, with the name of what was called when it is known.

The memo stores positions in an ``array('q')`` (8 bytes an entry; other stand-ins by reference),
so a stream that memoizes millions of strings stays small.

Every import and every call is reported to the :class:`Sink` with its offset. The loop that
drives the opcodes is in :meth:`Machine.run`; joblib's raw arrays are sized by
``joblib_arrays`` and skipped there.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable
from typing import Any, Protocol

from gates.security_scan import pickle_opcodes as ops
from gates.security_scan.findings import Verdict
from gates.security_scan.pickle_opcodes import ScanError, scalar_at, uint

_U32 = struct.Struct("<I").unpack_from
DICT_ITEMS_KEPT = 64  # a dict keeps this many items for evaluation; more are counted, not kept
# Bounds on the symbolic state, checked every CHECK_EVERY bytes of stream: a crafted stream of pushes
# (or of memo entries) would otherwise grow the scanner's memory with the file. Real model pickles
# stay far below (lists and dicts are built in batches of 1 000 that APPENDS/SETITEMS pop).
CHECK_EVERY = 1 << 20
MAX_STACK = 5_000_000  # values on the stack and the metastack together (~40 bytes each)
MAX_MEMO = 30_000_000  # memo entries (8 bytes each)


class Global:
    """An imported name (module + qualified name, after py2 mapping) and its verdict."""

    __slots__ = ("dotted", "module", "pos", "verdict", "reason")

    def __init__(self, dotted: str, module: str, pos: int, verdict: Verdict, reason: str) -> None:
        self.dotted = dotted
        self.module = module
        self.pos = pos
        self.verdict = verdict
        self.reason = reason


class Obj:
    """What a call returned (or a persistent id resolved to); ``made_by`` is the imported callable."""

    __slots__ = ("made_by", "pos", "args", "attrs", "state")

    def __init__(self, made_by: Global | None, pos: int, args: Any = None) -> None:
        self.made_by = made_by
        self.pos = pos
        self.args = args
        self.attrs: dict[str, Any] | None = None  # joblib wrappers: the attributes BUILD set
        self.state: Any = None  # the last BUILD state (a numpy dtype's)


class Dict:
    """A dict under construction; keeps its first :data:`DICT_ITEMS_KEPT` items."""

    __slots__ = ("items", "more")

    def __init__(self) -> None:
        self.items: list[tuple[Any, Any]] = []
        self.more = 0

    def add(self, pairs: list[Any]) -> None:
        room = DICT_ITEMS_KEPT - len(self.items)
        count = len(pairs) // 2
        if room > 0:
            self.items += [(pairs[i], pairs[i + 1]) for i in range(0, min(count, room) * 2, 2)]
        self.more += max(0, count - max(room, 0))


PERSISTENT = "persistent"  # Obj.args of what a persistent id resolved to
ARRAY = Obj(None, -1, "joblib array")  # what a joblib wrapper becomes once its array is read


class Sink(Protocol):
    """Where the machine reports: judged imports, findings, persistent ids."""

    def judge(self, module: str, name: str) -> tuple[str, str, Verdict, str]:
        """(dotted, module, verdict, reason) of an import, after the py2 mapping."""
        ...

    def problem(self, kind: str, pos: int, message: str) -> None:
        """Record a warning about the stream that does not stop the scan."""
        ...

    def import_name(self, op: str, pos: int, module: str, name: str) -> Global:
        """Judge an import (GLOBAL, STACK_GLOBAL, INST), report it, return it."""
        ...

    def report(self, op: str, pos: int, dotted: str, verdict: Verdict, reason: str) -> None:
        """Record a finding."""
        ...

    def persistent_id(self, pos: int) -> None:
        """Note a persistent id (the loader's persistent_load resolves it)."""
        ...

    def raw_array(self, pos: int, nbytes: int) -> None:
        """Note a joblib array skipped at ``pos`` (``nbytes`` -1: a nested object stream)."""
        ...


#: ``(machine, wrapper, build_pos, file_pos) → file position after the array``, from joblib_arrays.
ArrayReader = Callable[["Machine", Obj, int, int], int]
#: A stream's state: stack, metastack, the compact memo (positions, or codes of :class:`Side`), its
#: side store, and the memo as a dict once a PUT skips an index (then the only memo).
State = tuple[list[Any], list[list[Any]], "array[int]", "Side", "dict[int, Any] | None"]


class Side:
    """Where memo entries that are not plain positions live; a negative memo value is a code here.

    Tuples of positions only (``(3, 'x')``, a joblib shape …) are flattened into an int array (a
    length, then the items), everything else is kept by reference: memoizing millions of small
    tuples then costs a few machine words each, not Python objects.
    """

    __slots__ = ("objs", "flat")

    def __init__(self) -> None:
        self.objs: list[Any] = []
        self.flat = array("q")

    def code(self, value: Any) -> int:
        """A negative int standing for ``value``."""
        if type(value) is tuple and (
                (len(value) == 2 and type(value[0]) is int and type(value[1]) is int)
                or (len(value) == 3 and type(value[0]) is int and type(value[1]) is int and type(value[2]) is int)
                or (len(value) <= 16 and all(type(item) is int for item in value))):
            at = len(self.flat)
            self.flat.append(len(value))
            self.flat.extend(value)
            return ~((at << 1) | 1)
        self.objs.append(value)
        return ~((len(self.objs) - 1) << 1)

    def value(self, code: int) -> Any:
        """What a memo value stands for."""
        if code >= 0:
            return code
        code = ~code
        if code & 1:
            at = code >> 1
            return tuple(self.flat[at + 1:at + 1 + self.flat[at]])
        return self.objs[code >> 1]

    def clear(self) -> None:
        self.objs.clear()
        del self.flat[:]
FORK_ITEMS = 256
FORK_MARKS = 64


class MemoOverlay(dict[int, Any]):
    """A memo that writes to itself and reads through to another stream's memo (never changing it)."""

    def __init__(self, memo: array[int], side: Side, sparse: dict[int, Any] | None) -> None:
        super().__init__()
        self.memo = memo
        self.side = side
        self.sparse = sparse

    def __contains__(self, index: object) -> bool:
        if dict.__contains__(self, index):
            return True
        if self.sparse is not None:
            return index in self.sparse
        return isinstance(index, int) and 0 <= index < len(self.memo)

    def __missing__(self, index: int) -> Any:
        if self.sparse is not None:
            return self.sparse[index]
        if 0 <= index < len(self.memo):
            return self.side.value(self.memo[index])
        raise KeyError(index)

    def __len__(self) -> int:
        return len(self.sparse if self.sparse is not None else self.memo) + dict.__len__(self)

EXTENSION_REASON = ("an extension code names a callable through copyreg's extension registry, which is empty "
                    "unless the loading process registers codes: what it calls cannot be seen in the file, "
                    "and none of the accepted frameworks writes one")


class Machine:
    """Runs pickle streams from a buffer over stand-ins, reporting to a :class:`Sink`."""

    def __init__(self, buf: bytes | bytearray | memoryview, sink: Sink, wrappers: frozenset[str],
                 read_array: ArrayReader) -> None:
        self.buf = buf
        self.sink = sink
        self.wrappers = wrappers  # class names whose BUILD is followed by raw array bytes (joblib)
        self.read_array = read_array
        self.live: State | None = None  # the running stream's state while a joblib array is read

    def fork(self) -> State | None:
        """A copy of the running stream's state to read on from elsewhere, without changing it.

        The stack keeps its top :data:`FORK_ITEMS` items, the metastack its top :data:`FORK_MARKS`
        marks (each trimmed the same way); the memo is shared read-only under an overlay. Enough
        for a best-effort second reading; deeper references make that reading stop.
        """
        if self.live is None:
            return None
        stack, metastack, memo, side, sparse = self.live
        return (stack[-FORK_ITEMS:], [m[-FORK_ITEMS:] for m in metastack[-FORK_MARKS:]], array("q"), Side(),
                MemoOverlay(memo, side, sparse))

    # ------------------------------------------------------------------ the loop

    def run(self, pos: int, *, plain: bool = False, end: int | None = None, state: State | None = None) -> int:
        """Run one stream from ``pos`` to its STOP; return the position where reading goes on.

        ``plain``: no joblib semantics (the nested stream of an object array, read by a plain
        unpickler). ``end``: read no further (default: the end of the buffer). ``state``: go on
        from a stack, metastack and memo (see :meth:`fork`) instead of empty ones. Raises
        :class:`ScanError` naming the opcode that could not be read.
        """
        buf = self.buf
        n = len(buf) if end is None else min(end, len(buf))
        kind = ops.KIND
        size = ops.SIZE
        call = self._call
        mutate = self._mutate
        u32 = _U32
        find = ops.finder(buf)
        LINE, LINE_MEMO = ops.LINE, ops.LINE_MEMO
        # kinds as locals: the loop compares against them for every opcode
        PUSH, MEMOIZE, SHORT, MARK, APPENDS = ops.PUSH, ops.MEMOIZE, ops.SHORT, ops.MARK, ops.APPENDS
        BINPUT, BINGET, APPEND, SETITEMS, SETITEM = ops.BINPUT, ops.BINGET, ops.APPEND, ops.SETITEMS, ops.SETITEM
        TUPLE_N, TUPLE, EMPTY_DICT, LONG, FRAME = ops.TUPLE_N, ops.TUPLE, ops.EMPTY_DICT, ops.LONG, ops.FRAME

        stack: list[Any] = []
        metastack: list[list[Any]] = []
        memo = array("q")  # what MEMOIZE/PUT stored: a position, or a code of side (8 bytes an entry)
        side = Side()
        sparse: dict[int, Any] | None = None  # the memo, once a PUT skips an index
        if state is not None:
            stack, metastack, memo, side, sparse = state
        push = stack.append
        frame_end = 0
        resume = -1  # joblib: where the file goes on once the rest of the current frame is run
        limit = n
        last = pos
        stop = min(limit, pos + CHECK_EVERY)
        while True:
            try:
                while pos < stop:
                    last = pos
                    op = buf[pos]
                    k = kind[op]
                    if k == PUSH:
                        push(pos)
                        pos += size[op]
                    elif k == MEMOIZE:
                        if sparse is None:
                            top = stack[-1]
                            if type(top) is int:
                                memo.append(top)
                            else:
                                memo.append(side.code(top))
                        else:
                            sparse[len(sparse)] = stack[-1]
                        pos += 1
                    elif k == SHORT:
                        push(pos)
                        pos += 2 + buf[pos + 1]
                    elif k == BINGET:
                        index = buf[pos + 1] if op == 0x68 else u32(buf, pos + 1)[0]
                        if sparse is None and index < len(memo):
                            value = memo[index]
                            push(value if value >= 0 else side.value(value))
                        else:
                            push(_get(memo, side, sparse, index, pos))
                        pos += size[op]
                    elif k == TUPLE_N:
                        count = op - 0x84
                        if len(stack) < count:
                            raise ScanError("corrupt", pos, f"{ops.NAMES[op]} on a stack of {len(stack)}")
                        items = stack[-count:]
                        del stack[-count:]
                        push(tuple(items))
                        pos += 1
                    elif k == BINPUT:
                        index = buf[pos + 1] if op == 0x71 else u32(buf, pos + 1)[0]
                        top = stack[-1]
                        if sparse is None and index == len(memo) and type(top) is int:
                            memo.append(top)
                        else:
                            sparse = _put(memo, side, sparse, index, top)
                        pos += size[op]
                    elif k == LONG:  # BINUNICODE, BINBYTES: skipped, never copied
                        push(pos)
                        pos += 5 + u32(buf, pos + 1)[0]
                    elif k == APPEND:
                        stack.pop()
                        target = stack[-1]
                        if type(target) is Obj or type(target) is Global:
                            mutate("APPEND", pos, target)
                        pos += 1
                    elif k == SETITEM:
                        value = stack.pop()
                        key = stack.pop()
                        target = stack[-1]
                        if type(target) is Dict:
                            target.add([key, value])
                        elif type(target) is Obj or type(target) is Global:
                            mutate("SETITEM", pos, target)
                        pos += 1
                    elif k == LINE:  # INT LONG FLOAT STRING UNICODE (protocol 0)
                        end = find(b"\n", pos + 1, limit) if find is not None else ops.line_end(buf, pos + 1, limit)
                        if end < 0:
                            raise ScanError("truncated", pos, f"{ops.NAMES[op]} argument has no end of line")
                        push(pos)
                        pos = end + 1
                    elif k == LINE_MEMO:  # PUT, GET (protocol 0)
                        end = find(b"\n", pos + 1, limit) if find is not None else ops.line_end(buf, pos + 1, limit)
                        if end < 0:
                            raise ScanError("truncated", pos, f"{ops.NAMES[op]} argument has no end of line")
                        index = _decimal(buf, pos, end)
                        if op == 0x70:
                            sparse = _put(memo, side, sparse, index, stack[-1])
                        else:
                            push(_get(memo, side, sparse, index, pos))
                        pos = end + 1
                    elif k == MARK:
                        metastack.append(stack)
                        stack = []
                        push = stack.append
                        pos += 1
                    elif k == APPENDS:
                        stack = metastack.pop()
                        push = stack.append
                        target = stack[-1]
                        if type(target) is Obj or type(target) is Global:
                            mutate("APPENDS", pos, target)
                        pos += 1
                    elif k == SETITEMS:
                        items = stack
                        stack = metastack.pop()
                        push = stack.append
                        target = stack[-1]
                        if type(target) is Dict:
                            target.add(items)
                        elif type(target) is Obj or type(target) is Global:
                            mutate("SETITEMS", pos, target)
                        pos += 1
                    elif k == TUPLE:
                        items = stack
                        stack = metastack.pop()
                        push = stack.append
                        push(tuple(items))
                        pos += 1
                    elif k == EMPTY_DICT:
                        push(Dict())
                        pos += 1
                    elif k == FRAME:
                        frame_end = pos + 9 + uint(buf, pos + 1, 8)
                        pos += 9
                    elif op == 0x2E:  # STOP
                        if not stack:
                            raise ScanError("corrupt", pos, "STOP on an empty stack")
                        return resume if resume >= 0 else pos + 1
                    elif op == 0x62:  # BUILD
                        state = stack.pop()
                        inst = stack[-1]
                        self._build(inst, state, pos, plain)
                        if plain or type(inst) is not Obj or inst.made_by is None \
                                or inst.made_by.dotted not in self.wrappers:
                            pos += 1
                            continue
                        # a joblib wrapper: its array's bytes follow in the file, not as opcodes
                        self.live = (stack, metastack, memo, side, sparse)  # for the plain-load reading
                        if resume >= 0:  # running the rest of a frame: the file is further on
                            resume = self.read_array(self, inst, pos, resume)
                            pos += 1
                        elif frame_end > pos + 1:  # the frame was read ahead: the array follows it
                            resume = self.read_array(self, inst, pos, frame_end)
                            limit = frame_end
                            stop = min(stop, limit)
                            pos += 1
                        else:
                            pos = self.read_array(self, inst, pos, pos + 1)
                        self.live = None
                        stack[-1] = ARRAY
                    elif op == 0x52:  # REDUCE
                        args = stack.pop()
                        func = stack[-1]
                        stack[-1] = call("REDUCE", pos, func, args)
                        pos += 1
                    elif op == 0x81:  # NEWOBJ
                        args = stack.pop()
                        stack[-1] = call("NEWOBJ", pos, stack[-1], args)
                        pos += 1
                    elif op == 0x92:  # NEWOBJ_EX
                        stack.pop()
                        args = stack.pop()
                        stack[-1] = call("NEWOBJ_EX", pos, stack[-1], args)
                        pos += 1
                    elif op == 0x93:  # STACK_GLOBAL
                        name = stack.pop()
                        module = stack.pop()
                        push(self._stack_global(pos, module, name))
                        pos += 1
                    elif op == 0x63 or op == 0x69:  # GLOBAL, INST
                        end1 = ops.line_end(buf, pos + 1, limit)
                        end2 = ops.line_end(buf, end1 + 1, limit) if end1 >= 0 else -1
                        if end2 < 0:
                            raise ScanError("truncated", pos, f"{ops.NAMES[op]} argument has no end of line")
                        module_s = _text(buf[pos + 1:end1], pos)
                        name_s = _text(buf[end1 + 1:end2], pos)
                        if op == 0x63:
                            push(self.sink.import_name("GLOBAL", pos, module_s, name_s))
                        else:  # INST imports and calls the class with the items above the mark
                            klass = self.sink.import_name("INST", pos, module_s, name_s)
                            args = stack
                            stack = metastack.pop()
                            push = stack.append
                            push(Obj(klass, pos, tuple(args)))
                        pos = end2 + 1
                    elif op == 0x6F:  # OBJ
                        items = stack
                        stack = metastack.pop()
                        push = stack.append
                        push(call("OBJ", pos, items[0], tuple(items[1:])))
                        pos += 1
                    elif op == 0x80:  # PROTO
                        if buf[pos + 1] > ops.HIGHEST_PROTOCOL:
                            raise ScanError("corrupt", pos, f"unsupported pickle protocol {buf[pos + 1]}")
                        pos += 2
                    elif op == 0x64:  # DICT
                        items = stack
                        stack = metastack.pop()
                        push = stack.append
                        if len(items) % 2:
                            raise ScanError("corrupt", pos, "DICT with an odd number of items")
                        made = Dict()
                        made.add(items)
                        push(made)
                        pos += 1
                    elif op == 0x6C or op == 0x91:  # LIST, FROZENSET
                        stack = metastack.pop()
                        push = stack.append
                        push(pos)
                        pos += 1
                    elif op == 0x90:  # ADDITEMS
                        stack = metastack.pop()
                        push = stack.append
                        target = stack[-1]
                        if type(target) is Obj or type(target) is Global:
                            mutate("ADDITEMS", pos, target)
                        pos += 1
                    elif op == 0x30:  # POP: an item, or the mark when nothing is above it
                        if stack:
                            stack.pop()
                        else:
                            stack = metastack.pop()
                            push = stack.append
                        pos += 1
                    elif op == 0x31:  # POP_MARK
                        stack = metastack.pop()
                        push = stack.append
                        pos += 1
                    elif op == 0x32:  # DUP
                        push(stack[-1])
                        pos += 1
                    elif op == 0x54:  # BINSTRING: a signed length
                        length = int.from_bytes(buf[pos + 1:pos + 5], "little", signed=True)
                        if length < 0:
                            raise ScanError("corrupt", pos, "BINSTRING with a negative length")
                        push(pos)
                        pos += 5 + length
                    elif op == 0x51:  # BINPERSID
                        stack.pop()
                        self.sink.persistent_id(pos)
                        push(Obj(None, pos, PERSISTENT))
                        pos += 1
                    elif op == 0x50:  # PERSID
                        end = ops.line_end(buf, pos + 1, limit)
                        if end < 0:
                            raise ScanError("truncated", pos, "PERSID argument has no end of line")
                        self.sink.persistent_id(pos)
                        push(Obj(None, pos, PERSISTENT))
                        pos = end + 1
                    elif 0x82 <= op <= 0x84:  # EXT1, EXT2, EXT4
                        width = (1, 2, 4)[op - 0x82]
                        code = uint(buf, pos + 1, width)
                        ext = Global(f"<extension code {code}>", "", pos, Verdict.DENIED, EXTENSION_REASON)
                        self.sink.report(ops.NAMES[op], pos, ext.dotted, ext.verdict, ext.reason)
                        push(ext)
                        pos += 1 + width
                    elif op == 0x8A or op == 0x8B:  # LONG1, LONG4
                        width = 1 if op == 0x8A else 4
                        length = int.from_bytes(buf[pos + 1:pos + 1 + width], "little", signed=width == 4)
                        if length < 0:
                            raise ScanError("corrupt", pos, "LONG4 with a negative length")
                        push(pos)
                        pos += 1 + width + length
                    elif op == 0x8D or op == 0x8E or op == 0x96:  # BINUNICODE8, BINBYTES8, BYTEARRAY8
                        push(pos)
                        pos += 9 + uint(buf, pos + 1, 8)  # skipped, never copied
                    elif op == 0x98:  # READONLY_BUFFER: the top stays
                        if not stack:
                            raise ScanError("corrupt", pos, "READONLY_BUFFER on an empty stack")
                        pos += 1
                    else:
                        raise ScanError("corrupt", pos, f"invalid opcode 0x{op:02x}")
            except ScanError:
                raise
            except (IndexError, KeyError, ValueError, TypeError, OverflowError, struct.error) as exc:
                raise _failure(buf, last, limit, exc) from exc
            if pos < limit:  # a checkpoint, not the end: the symbolic state must stay bounded
                if len(stack) + sum(len(frame) for frame in metastack) > MAX_STACK or len(memo) > MAX_MEMO:
                    raise ScanError("limit", pos, f"the stream keeps more than {MAX_STACK:,} values on its stack "
                                                  f"or {MAX_MEMO:,} in its memo: not scanned further")
                stop = min(limit, pos + CHECK_EVERY)
                continue
            if pos == limit and resume >= 0:  # the frame is run: the file goes on after the arrays
                pos, limit, resume = resume, n, -1
                stop = min(limit, pos + CHECK_EVERY)
                continue
            if pos > limit:
                if resume >= 0:
                    raise ScanError("corrupt", last, f"{ops.NAMES[buf[last]]} crosses the end of its frame")
                raise ScanError("truncated", last, f"data ends inside {ops.NAMES[buf[last]]}")
            raise ScanError("truncated", min(pos, n), "the stream ends without STOP")

    # ------------------------------------------------------------------ what the opcodes call

    def _call(self, op: str, pos: int, func: Any, args: Any) -> Obj:
        """REDUCE, NEWOBJ(_EX), OBJ: report what is called; return what it makes."""
        if type(func) is Global:
            self.sink.report(op, pos, func.dotted, func.verdict, func.reason)
            made_by = func
            if func.dotted == "copyreg._reconstructor" and type(args) is tuple and args and type(args[0]) is Global:
                made_by = args[0]  # protocol 0/1: copyreg._reconstructor(cls, base, state) makes a cls
            return Obj(made_by, pos, args)
        self.sink.report(op, pos, "unresolved", Verdict.UNKNOWN, "calls " + self._what(func))
        return Obj(None, pos, args)

    def _mutate(self, op: str, pos: int, target: Obj | Global) -> None:
        """APPEND(S), SETITEM(S), ADDITEMS on something not a plain list/dict/set: a method call."""
        method = {"APPEND": "append", "APPENDS": "extend", "ADDITEMS": "add"}.get(op, "__setitem__")
        if isinstance(target, Global):
            self.sink.report(op, pos, target.dotted, Verdict.DENIED,
                             f"calls {method} on an imported object (changes a module's state)")
        elif target.made_by is not None:
            made = target.made_by
            self.sink.report(op, pos, made.dotted, made.verdict,
                             f"calls {method} on an object made by it; {made.reason}")
        else:
            self.sink.report(op, pos, "unresolved", Verdict.UNKNOWN, f"calls {method} of " + self._what(target))

    def _build(self, inst: Any, state: Any, pos: int, plain: bool) -> None:
        """BUILD: report the __setstate__ (or attribute update) it runs; keep what joblib needs."""
        if type(inst) is Global:
            self.sink.report("BUILD", pos, inst.dotted, Verdict.DENIED,
                             "BUILD on an imported object sets its attributes (monkey-patching)")
            return
        if type(inst) is not Obj:
            return  # a plain value has neither __setstate__ nor __dict__: the load would fail
        made = inst.made_by
        if made is not None:
            self.sink.report("BUILD", pos, made.dotted, made.verdict,
                             f"sets the state of an object made by it; {made.reason}")
        else:
            self.sink.report("BUILD", pos, "unresolved", Verdict.UNKNOWN, "sets the state of " + self._what(inst))
        inst.state = state
        if not plain and made is not None and made.dotted in self.wrappers:
            attrs = inst.attrs if inst.attrs is not None else {}
            for part in (state if type(state) is tuple and len(state) == 2 else (state,)):
                if type(part) is Dict:
                    for key, value in part.items:
                        key_s = self.string(key)
                        if key_s is not None:
                            attrs[key_s] = value
            inst.attrs = attrs

    def _what(self, entry: Any) -> str:
        if entry is ARRAY:
            return "a joblib array"
        if type(entry) is Obj:
            if entry.args is PERSISTENT:
                return f"a persistent object (offset {entry.pos})"
            if entry.made_by is not None:
                return f"what {entry.made_by.dotted} returned (offset {entry.pos})"
            return f"the result of an unresolved call (offset {entry.pos})"
        if type(entry) is int:
            return f"a {ops.NAMES[self.buf[entry]]} value (offset {entry}); the load would fail"
        return f"a {type(entry).__name__.lower()} value; the load would fail"

    def _stack_global(self, pos: int, module: Any, name: Any) -> Global:
        """STACK_GLOBAL imports the two strings below it; anything but string literals is dynamic."""
        module_s = self.string(module)
        name_s = self.string(name)
        if module_s is not None and name_s is not None:
            return self.sink.import_name("STACK_GLOBAL", pos, module_s, name_s)
        computed = "<computed>"
        dotted = f"{module_s if module_s is not None else computed}.{name_s if name_s is not None else computed}"
        reason = ("module or name is not a string literal of the stream but computed while loading ("
                  + (self._what(module) if module_s is None else self._what(name)) + "): the import cannot be seen")
        imported = Global(dotted, module_s or "", pos, Verdict.DENIED, reason)
        self.sink.report("STACK_GLOBAL", pos, dotted, Verdict.DENIED, reason)
        return imported

    def string(self, entry: Any) -> str | None:
        """The str an entry holds when it is a string literal of the stream (None otherwise)."""
        if type(entry) is int and self.buf[entry] in ops.STR_OPCODES:
            value = scalar_at(self.buf, entry)
            return value if isinstance(value, str) else None
        return None



def _put(memo: array[int], side: Side, sparse: dict[int, Any] | None, index: int,
         value: Any) -> dict[int, Any] | None:
    """Store in the memo; an index past the end turns it into a dict (kept from then on)."""
    if sparse is None:
        if index <= len(memo):
            code = value if type(value) is int else side.code(value)
            if index == len(memo):
                memo.append(code)
            else:
                memo[index] = code
            return None
        sparse = {i: side.value(v) for i, v in enumerate(memo)}
        del memo[:]
        side.clear()
    sparse[index] = value
    return sparse


def _get(memo: array[int], side: Side, sparse: dict[int, Any] | None, index: int, pos: int) -> Any:
    if sparse is None:
        if 0 <= index < len(memo):
            return side.value(memo[index])
    elif index in sparse:
        return sparse[index]
    raise ScanError("corrupt", pos, f"the memo has no entry {index}")


def _decimal(buf: bytes | bytearray | memoryview, pos: int, end: int) -> int:
    """The memo index of a PUT or GET line."""
    try:
        index = int(bytes(buf[pos + 1:end]))
    except ValueError as exc:
        raise ScanError("corrupt", pos, f"{ops.NAMES[buf[pos]]} argument is not a number") from exc
    if index < 0:
        raise ScanError("corrupt", pos, f"negative {ops.NAMES[buf[pos]]} argument")
    return index


def _text(raw: bytes | bytearray | memoryview, pos: int) -> str:
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScanError("corrupt", pos, "GLOBAL or INST name is not UTF-8") from exc


def _failure(buf: bytes | bytearray | memoryview, last: int, limit: int, exc: Exception) -> ScanError:
    """What an exception inside the loop means: the data ended inside the opcode, or it cannot apply."""
    if last >= len(buf):
        return ScanError("truncated", last, "data ends inside the stream")
    if ops.extent(buf, last, limit) is None:
        return ScanError("truncated", last, f"data ends inside {ops.NAMES[buf[last]]}")
    return ScanError("corrupt", last, f"{ops.NAMES[buf[last]]} cannot apply here ({type(exc).__name__}: {exc})")
