"""The OGC API edge: the only place, with process modules, that imports pygeoapi."""
