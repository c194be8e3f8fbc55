"""invoke_core: canvas document -> generation request -> images, on diffusers pipelines.

Imports neither `server` nor `db`; usable from a script, a test or a worker.
"""

__version__ = "0.1.0"
