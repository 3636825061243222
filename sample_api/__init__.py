"""Faithful replica of the Multiverse sample API, with scalable seeded data and faults.

Entry points: ``python -m sample_api serve|dump``, ``sample_api.server.run_in_thread``,
``sample_api.server.serve_in_background``, ``sample_api.data.build_dataset`` and
``sample_api.dump.ground_truth``. See ``sample_api/README.md``.
"""

from .settings import ServerSettings

__all__ = ["ServerSettings"]
__version__ = "1.0.0"
