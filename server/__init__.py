"""The HTTP application and the command line: onemap's composition root.

``server.app.create_app`` wires the core (:mod:`spatial`), the tile engine
(:mod:`tiles`) and the analyses (:mod:`scenarios`) behind pygeoapi's OGC API
routes; ``server.cli`` is the ``onemap`` command. This is the edge: with the
process adapter in ``scenarios.processes.adapter``, the only place that imports
pygeoapi. Nothing in ``spatial``, ``tiles`` or ``scenarios`` imports it.
"""
