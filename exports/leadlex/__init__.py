"""The LeadLex dialect of exports: ``GET /v1/contacts/export`` (a synchronous stream),
``POST /v1/contacts/exports`` (a job) and their admin actions and command, on the one
export engine (``exports.engine``), shaped like the Close dialect in ``exports.close``:
``api`` → ``services`` → ``kinds`` (the ``contacts`` kind) → ``selectors``."""
