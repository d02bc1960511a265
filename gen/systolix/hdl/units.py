"""Placing repeated sub-components: plain submodules, or one module instantiated many times.

An array holds R x C processing elements of a handful of distinct configurations. Elaborated
as plain submodules, every element becomes its own Verilog module, so emission time and file
size grow with R x C. A platform (the object a design is elaborated for) may instead offer the
hook ``instantiate_unit(unit, key)``: it converts the first unit of each ``key`` to a module of
its own and returns an :class:`amaranth.hdl.Instance` of that module, wired to the unit's ports,
to take the unit's place. :mod:`systolix.emit` does that; Amaranth's simulator (which cannot
simulate an ``Instance``) and the FPGA flow elaborate the plain hierarchy. Both describe the
same logic.
"""

from amaranth.hdl import DomainRenamer

__all__ = ["add_unit"]


def add_unit(m, name, unit, key, platform, domain="sync"):
    """Add ``unit`` to module ``m`` as submodule ``name``.

    Parameters
    ----------
    m : Module
    name : str
        Submodule (instance) name.
    unit : wiring.Component
        Its signature members are the ports; the parent connects to them as usual.
    key : tuple
        Hashable; units with equal keys must elaborate to the same logic. Its first element, a
        short label, names the module (``<top>.<label>_<n>``).
    platform : object or None
        The platform ``m`` is elaborated for.
    domain : str
        The clock domain the unit's ``sync`` logic runs in.
    """
    hook = getattr(platform, "instantiate_unit", None)
    sub = unit if hook is None else hook(unit, key)
    m.submodules[name] = sub if domain == "sync" else DomainRenamer(domain)(sub)
