"""onemap's vector-tile engine: builds, caches and serves MVT tiles.

Depends on :mod:`spatial`; never on :mod:`scenarios`.
"""
