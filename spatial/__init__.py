"""onemap core: database access, migrations, coordinate systems, the city model.

``spatial`` is the package every other part of onemap depends on; it imports
neither :mod:`tiles` nor :mod:`scenarios`.
"""

__version__ = "0.1.0"
