"""FLOPs and bytes of a compiled program with every `while` loop counted trip-count times.

XLA's cost analysis (`compiled.cost_analysis()`) visits a while loop's body once, whatever
its trip count. Our scanned DiT stack (`jax.lax.scan` over the blocks, forward and the
backward's transposed scan), gradient accumulation and any scan inside a codec are such
loops, so the raw figures count one block instead of `num_layers`.

The correction works on the compiled, optimized HLO (the program the chip runs, with its
SPMD partitioning, fusion and remat), not on a model of it:
- each while loop's trip count is read from the program: XLA's `known_trip_count`
  annotation where the backend keeps it (CPU), else the loop condition
  `induction_variable < constant` with the induction variable's initial constant (TPU);
- XLA's own cost analysis is re-run on each loop body as if it were the entry computation
  (`R(body)`: the body once, its inner loops once each);
- the true cost of a computation is T(c) = R(c) + sum over the loops it runs of
  (trip x T(body) - R(body)), applied from the innermost loops out; the entry's R is the
  backend's own figure.

Loop conditions are counted once (they are a compare of two scalars). A loop whose trip count
cannot be read is counted once and named in `LoopCost.unknown`.
"""

from __future__ import annotations

import dataclasses
import functools
import re

_COMP_HEADER = re.compile(r"^(ENTRY\s+)?%?([\w.\-]+)\s*\(")
_WHILE = re.compile(r"=\s*.*?\swhile\(%?([\w.\-]+)\).*?condition=%?([\w.\-]+).*?body=%?([\w.\-]+)")
_CALLS = re.compile(
    r"\b(?:calls|to_apply|condition|body|true_computation|false_computation)=%?([\w.\-]+)"
)
_CALL_LISTS = re.compile(r"\b(?:branch_computations|called_computations|calls)=\{([^}]*)\}")
_TRIP = re.compile(r'"known_trip_count":\{"n":"(\d+)"\}')
_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*)$")
_CONSTANT = re.compile(r"\sconstant\((-?\d+)\)")
_GTE = re.compile(r"get-tuple-element\(%?([\w.\-]+)\),\s*index=(\d+)")
_COMPARE = re.compile(r"compare\(%?([\w.\-]+),\s*%?([\w.\-]+)\),\s*direction=(\w+)")
_UNARY = re.compile(r"\s(?:copy|bitcast|convert)\(%?([\w.\-]+)\)")
_TUPLE = re.compile(r"\stuple\(([^)]*)\)")


@dataclasses.dataclass
class Loop:
    computation: str  # where the while instruction is
    body: str
    trip_count: int | None
    body_flops: float  # XLA's count of one body (inner loops once)
    body_bytes: float


@dataclasses.dataclass
class LoopCost:
    flops: float  # per device, every loop iteration counted
    bytes_accessed: float
    xla_flops: float  # the backend's own figures (each loop body once)
    xla_bytes: float
    loops: list[Loop]
    unknown: list[str]  # loops whose trip count could not be read (counted once)


@dataclasses.dataclass
class _Computation:
    name: str
    lines: list[str]
    is_entry: bool


def _split(text: str) -> tuple[str, list[_Computation]]:
    """(module header line, computations in order) of an HLO module's text."""
    lines = text.splitlines()
    header, comps, current = "", [], None
    for line in lines:
        if line.startswith("HloModule"):
            header = line
        elif current is None:
            m = _COMP_HEADER.match(line)
            if m and line.rstrip().endswith("{"):
                current = _Computation(m.group(2), [line], bool(m.group(1)))
        else:
            current.lines.append(line)
            if line.startswith("}"):
                comps.append(current)
                current = None
    if not header or not comps:
        raise ValueError("not the text of an HLO module")
    return header, comps


def _callees(comp: _Computation) -> set[str]:
    out = set()
    for line in comp.lines[1:]:
        out.update(_CALLS.findall(line))
        for group in _CALL_LISTS.findall(line):
            out.update(n.strip().lstrip("%") for n in group.split(",") if n.strip())
    return out


def _instructions(comp: _Computation) -> dict[str, str]:
    out = {}
    for line in comp.lines[1:-1]:
        m = _INSTR.match(line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def _root_compare(cond: _Computation, by_name: dict) -> tuple[str, str, str] | None:
    """(lhs, rhs, direction) of the condition's ROOT compare, names in `cond`; a compare
    wrapped in a fusion (CPU) is mapped back through the fusion's operands."""
    root = next((ln for ln in cond.lines if ln.lstrip().startswith("ROOT")), "")
    cmp = _COMPARE.search(root)
    if cmp:
        return cmp.group(1), cmp.group(2), cmp.group(3)
    fusion = re.search(r"\sfusion\(([^)]*)\).*?calls=%?([\w.\-]+)", root)
    if not fusion or fusion.group(2) not in by_name:
        return None
    operands = [o.strip().lstrip("%") for o in fusion.group(1).split(",")]
    inner = by_name[fusion.group(2)]
    inner_root = next((ln for ln in inner.lines if ln.lstrip().startswith("ROOT")), "")
    cmp = _COMPARE.search(inner_root)
    if not cmp:
        return None
    params = {}
    for name, rhs in _instructions(inner).items():
        p = re.search(r"\sparameter\((\d+)\)", " " + rhs)
        if p:
            params[name] = int(p.group(1))
    a, b = params.get(cmp.group(1)), params.get(cmp.group(2))
    if a is None or b is None or max(a, b) >= len(operands):
        return None
    return operands[a], operands[b], cmp.group(3)


def _trip_count(
    while_line: str, parent: _Computation, cond: _Computation, by_name: dict
) -> int | None:
    m = _TRIP.search(while_line)
    if m:
        return int(m.group(1))
    # condition: ROOT compare(get-tuple-element(param), index=i), constant(N)), direction=LT
    instrs = _instructions(cond)
    cmp = _root_compare(cond, by_name)
    if not cmp:
        return None
    a, b, direction = cmp

    def const(name):
        c = _CONSTANT.search(" " + instrs.get(name, ""))
        return None if c is None else int(c.group(1))

    def gte_index(name):
        g = _GTE.search(instrs.get(name, ""))
        return None if g is None else int(g.group(2))

    if const(b) is not None and gte_index(a) is not None:
        limit, index = const(b), gte_index(a)
    elif const(a) is not None and gte_index(b) is not None:
        limit, index = const(a), gte_index(b)
        direction = {"LT": "GT", "GT": "LT", "LE": "GE", "GE": "LE"}.get(direction, direction)
    else:
        return None
    # the induction variable's initial value: element `index` of the while's operand tuple
    init_name = _WHILE.search(while_line).group(1)
    parent_instrs = _instructions(parent)
    tup = _TUPLE.search(" " + parent_instrs.get(init_name, ""))
    if not tup:
        return None
    operands = re.sub(r"/\*.*?\*/", "", tup.group(1))
    elems = [e.strip().split()[-1].lstrip("%") for e in operands.split(",")]
    if index >= len(elems):
        return None
    start = _constant_through_copies(parent_instrs, elems[index])
    if start is None:
        return None
    n = {"LT": limit - start, "LE": limit - start + 1, "NE": abs(limit - start)}.get(direction)
    if direction in ("GT", "GE"):  # a loop counting down
        n = start - limit + (direction == "GE")
    return None if n is None else max(n, 0)


def _constant_through_copies(instrs: dict[str, str], name: str) -> int | None:
    """The integer constant `name` is, looking through copies, bitcasts and converts."""
    for _ in range(16):
        rhs = " " + instrs.get(name, "")
        c = _CONSTANT.search(rhs)
        if c:
            return int(c.group(1))
        m = _UNARY.search(rhs)
        if not m:
            return None
        name = m.group(1)
    return None


def loop_aware_cost(hlo_text: str, xla_flops: float, xla_bytes: float, client=None) -> LoopCost:
    """The cost of the program in `hlo_text` (a compiled module's as_text()) with each loop
    counted trip-count times, from the backend's own entry figures `xla_flops` /
    `xla_bytes`. `client`: the XLA client whose cost analysis costs the loop bodies (default:
    the CPU backend's; its FLOPs equal the TPU backend's, its bytes may differ by a few
    percent on a body because it ignores TPU tiling)."""
    from jax._src.lib import xla_client as xc

    header, comps = _split(hlo_text)
    by_name = {c.name: c for c in comps}
    calls = {c.name: _callees(c) for c in comps}
    whiles: dict[str, list[tuple[str, str, str]]] = {}  # computation -> [(line, cond, body)]
    for c in comps:
        for line in c.lines[1:]:
            m = _WHILE.search(line)
            if m and " while(" in line:
                whiles.setdefault(c.name, []).append((line, m.group(2), m.group(3)))
    if not whiles:
        return LoopCost(xla_flops, xla_bytes, xla_flops, xla_bytes, [], [])
    if client is None:
        import jax

        client = jax.devices("cpu")[0].client

    def reachable(root: str) -> list[_Computation]:
        seen, stack = set(), [root]
        while stack:
            n = stack.pop()
            if n in seen or n not in by_name:
                continue
            seen.add(n)
            stack.extend(calls[n])
        return [c for c in comps if c.name in seen]

    @functools.cache
    def xla_cost(name: str) -> tuple[float, float]:
        """R(name): XLA's cost analysis of computation `name` as the entry."""
        parts = ["HloModule loop_body_cost", ""]
        for c in reachable(name):
            first = re.sub(r"^ENTRY\s+", "", c.lines[0])
            if c.name == name:
                first = "ENTRY " + first
            parts.extend([first, *c.lines[1:], ""])
        # the module's stack-frame table is not copied: drop the references to it
        text = re.sub(r"\s*stack_frame_id=\d+", "", "\n".join(parts))
        module = xc.hlo.hlo_module_from_text(text)
        r = xc._xla.hlo_module_cost_analysis(client, module)
        return float(r.get("flops", 0.0)), float(r.get("bytes accessed", 0.0))

    def run_loops(name: str, seen=()) -> list[tuple[str, str, str, str]]:
        """The while loops `name` runs once per call: its own and those of computations it
        calls other than through a loop (call, conditional, async wrappers)."""
        out = [(name, *w) for w in whiles.get(name, [])]
        bodies = {b for _, _, b in whiles.get(name, [])} | {c for _, c, _ in whiles.get(name, [])}
        for callee in calls.get(name, ()):
            if callee not in bodies and callee not in seen and callee in by_name:
                out.extend(run_loops(callee, seen + (name,)))
        return out

    loops, unknown = [], []  # list[Loop], list[str]

    @functools.cache
    def extra(name: str) -> tuple[float, float]:
        """T(name) - R(name): what the loops inside `name` add beyond one visit of each."""
        df = db = 0.0
        for parent, line, cond, body in run_loops(name):
            trip = _trip_count(line, by_name[parent], by_name[cond], by_name)
            rf, rb = xla_cost(body)
            ef, eb = extra(body)
            loops.append(Loop(parent, body, trip, rf, rb))
            if trip is None:
                unknown.append(body)
                trip = 1
            df += trip * (rf + ef) - rf
            db += trip * (rb + eb) - rb
        return df, db

    entry = next(c.name for c in comps if c.is_entry)
    df, db = extra(entry)
    return LoopCost(xla_flops + df, xla_bytes + db, xla_flops, xla_bytes, loops, unknown)
