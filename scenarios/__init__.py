"""onemap's spatial analyses (专题应用场景), as pure functions and spopt-style classes.

Depends on :mod:`spatial`; never on :mod:`tiles`.
"""
