"""Gate ``security_scan``: a candidate judged for what it could do when loaded, never by loading it.

What it checks (``docs/security_scan.md`` has the details, the config and the evidence table):

- **model files** — each pinned artifact read as bytes, never unpickled or imported: pickle
  protocols 0–5, joblib (the pickle stream continues after each raw NumPy array), PyTorch zips,
  nested archives, safetensors and ONNX layouts; every callable a pickle can import or call judged
  against per-framework allowlists and a denylist;
- **dependencies** — the manifest's pinned requirements file against an offline OSV database;
- **secrets** — keys and tokens in the bundle's text files (masked wherever shown);
- **storage** — encryption, versioning, public access block and anonymous reads of the buckets.

Inputs (``GateInputs``; prepared by ``tasks/candidate_files.py`` and ``tasks/storage_posture.py`` in a
promotion, by ``tasks/preflight.py`` for ``clearance gate run``): the manifest's artifacts and, in
``extra``: ``artifact_files`` / ``artifact_errors``, ``requirements`` / ``requirements_key`` /
``requirements_error``, ``bundle_root``, ``bundle_files`` / ``bundle_skipped``, ``advisory_db``,
``storage_posture``, ``evidence_dir``, ``now``. An input not given makes its checks ``skipped`` with
why — never ``pass``.

Check ids (stable; ``<key>`` an artifact key, ``<file>`` a file or archive member such as
``model.zip!archive/data.pkl``):

===================================  ========================================================
``model_files``                      skipped: no local copies of the artifacts were given
``model_file:<key>``                 readable, format (declared, else detected) on ``allowed_formats``
``model_format:<file>``              truncated, corrupt, over a limit, unsafe layout (worst problem)
``callables:<file>``                 denied callable → fail; not on an allowlist → ``unknown_callable``
``dependencies``                     the requirements file is read (fail when ``required`` and absent)
``requirement:<file>:<line>``        unpinned (``unpinned``), another index (warn), invalid/include/conflict (error)
``advisory_db``                      the advisory database is configured (else skipped) and readable
``advisory_db_age``                  younger than ``advisory_max_age`` (else warn)
``advisory:<package>:<id>``          an advisory hit: fail at ``fail_at`` or worse, warn below
``advisory_check:<package>:<kind>``  a version or range the check could not judge
``secrets``                          the bundle's text files were scanned (skipped: none given)
``secrets:<file>``                   secrets found in a text file (``secrets``: fail or warn), masked
``not_scanned:<file>``               a text file left out (over the size bounds): skipped, with why
``storage``                          skipped: no posture given (pre-flight); error: none could be read
``storage:<bucket>:<aspect>``        encryption, versioning, public_access_block, policy: on / off / unknown
===================================  ========================================================

Modules: :mod:`~gates.security_scan.gate` (the registered gate), :mod:`~gates.security_scan.config`,
:mod:`~gates.security_scan.context`, :mod:`~gates.security_scan.checks` (one module per concern) and
:mod:`~gates.security_scan.evidence`; the scanners they call: ``pickle_scan``, ``callables``,
``model_files``, ``safetensors_check``, ``onnx_check``, ``requirements``, ``advisories``, ``secrets``,
``posture``.

Importing ``gates.security_scan.gate`` registers the gate (:mod:`gates.builtin` does); the package itself
imports nothing, so that reading a config (``gates.security_scan.config``) does not load the whole gate.
"""
