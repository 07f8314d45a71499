"""Pytrees: nested tuples, lists and dicts whose leaves are numbers and arrays.

Transforms take and return them as JAX does: the leaves become the tape's
arguments, and gradients come back in the arguments' structure. Dicts are
walked in sorted key order, so two dicts with the same keys flatten alike.
"""

LEAF = None  # the structure of a leaf


def is_container(x):
    return type(x) in (tuple, list, dict)


def flatten(tree):
    """(leaves, structure): the leaves in order, and how to rebuild the tree."""
    leaves = []
    return leaves, _flatten(tree, leaves)


def _flatten(tree, leaves):
    kind = type(tree)
    if kind is tuple or kind is list:
        return (kind, tuple(_flatten(x, leaves) for x in tree))
    if kind is dict:
        keys = sorted(tree)
        return (dict, tuple(keys), tuple(_flatten(tree[k], leaves) for k in keys))
    leaves.append(tree)
    return LEAF


def count(structure):
    if structure is LEAF:
        return 1
    return sum(count(s) for s in structure[-1])


def unflatten(structure, leaves):
    """The tree of `structure` with the given leaves (an iterable)."""
    return _unflatten(structure, iter(leaves))


def _unflatten(structure, leaves):
    if structure is LEAF:
        return next(leaves)
    if structure[0] is dict:
        return {k: _unflatten(s, leaves) for k, s in zip(structure[1], structure[2])}
    return structure[0](_unflatten(s, leaves) for s in structure[1])


def broadcast_prefix(prefix, structure, what):
    """A pytree prefix (in_axes, say) repeated down to one entry per leaf of
    structure, or a ValueError naming the mismatch."""
    out = []
    _broadcast(prefix, structure, out, what)
    return out


def _broadcast(prefix, structure, out, what):
    if not is_container(prefix) or structure is LEAF:
        if is_container(prefix):
            raise ValueError(f"{what}: {prefix!r} has more structure than the argument")
        out.extend([prefix] * count(structure))
        return
    kind = structure[0]
    if type(prefix) is dict:
        if kind is not dict or sorted(prefix) != list(structure[1]):
            raise ValueError(f"{what}: the keys of {prefix!r} do not match the argument's")
        for k, s in zip(structure[1], structure[2]):
            _broadcast(prefix[k], s, out, what)
        return
    if kind is dict or len(prefix) != len(structure[1]):
        raise ValueError(f"{what}: {prefix!r} does not match the argument's structure")
    for p, s in zip(prefix, structure[1]):
        _broadcast(p, s, out, what)
