# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Helpers shared by the test modules (importable as ``utils.*``: pytest
puts ``tests/`` on ``sys.path`` for ``tests/conftest.py``)."""
