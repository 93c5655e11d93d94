"""CRoW's benchmark against the reference registry: ``python -m bench`` (see ``bench/__main__.py``)."""
