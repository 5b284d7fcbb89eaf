"""Settings for the "before" run of ``bench/storage_presign.py``: LeadLex's settings
with django-storages' own per-thread connection handling put back."""

from config.settings import *  # noqa: F403  the product's settings, one override

STORAGES = {**STORAGES, "default": {"BACKEND": "bench.storage_presign.StockConnectionS3Storage"}}  # noqa: F405  star import
