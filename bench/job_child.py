"""One side of a speed comparison, in a process of its own: a raw diffusers pipeline, or `invoke_core`'s
Engine, loaded once and then running the jobs its parent sends.

Each side runs in its own process so that neither inherits the other's threads, allocator state or
warm caches, as a user's raw diffusers script and our server would not. The parent (bench/suite.py)
alternates jobs between the sides and times each from its own clock (request written -> reply read).

Protocol, one JSON object per line. The child prints {"ready": true, "load_s": ...} once started; then
{"load": MODEL} (raw: a diffusers folder; core: a model id in the data root) loads a model and answers
{"load_s": ...}; a job {"model", "prompt", "size", "steps", "seed", "cfg"} answers {"seconds": ...,
"digest": ..., "page_faults": ...} (digest: sha256 of the RGB pixels, so the parent can say whether
both sides made the same image). An empty line or end of input ends it. Models stay loaded.

    python bench/job_child.py raw [--tuned-heap]
    python bench/job_child.py core --root DATA_ROOT [--in-thread]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import resource
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np


def raw_runner(device: str, tuned: bool):
    """Plain diffusers: the pipeline class its folder names, the scheduler class it was saved with
    (Euler for SD; the flow-matching Euler for the transformer families), fp32 on the CPU."""
    if tuned:  # raw diffusers with our heap settings: what they give alone (invoke_core/allocator.py)
        from invoke_core import allocator

        allocator.tune()
    import torch
    from diffusers import DiffusionPipeline

    pipes: dict[str, object] = {}

    def load(path: str):
        if path not in pipes:
            # one model at a time, as the other sides' model caches hold it: the last one's memory goes back first
            pipes.clear()
            import gc

            gc.collect()
            _trim_heap()
            # components the folder leaves out (SD3 without its T5) are passed as None, as diffusers asks
            index = json.loads((Path(path) / "model_index.json").read_text())
            absent = {k: None for k, v in index.items() if isinstance(v, list) and v[0] is None}
            pipe = DiffusionPipeline.from_pretrained(path, local_files_only=True, torch_dtype=torch.float32, **absent)
            pipe.to(device)
            pipe.set_progress_bar_config(disable=True)
            pipes[path] = pipe
        return pipes[path]

    def run(job: dict) -> np.ndarray:
        pipe = load(job["model"])
        extra = raw_call_setup(pipe)
        with torch.inference_mode():
            image = pipe(
                prompt=job["prompt"], num_inference_steps=job["steps"], guidance_scale=job["cfg"], height=job["size"],
                width=job["size"], generator=torch.Generator("cpu").manual_seed(job["seed"]), output_type="np", **extra,
            ).images[0]
        return (np.asarray(image) * 255).round().clip(0, 255).astype(np.uint8)

    return load, run


def _trim_heap() -> None:
    """glibc's free pages back to the kernel (a no-op elsewhere): the unloaded model's memory really goes."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def raw_call_setup(pipe) -> dict:
    """Before each raw call: a fresh Euler on the pipeline's own config for the SD families (as our
    "euler"; the transformer families keep their flow-matching Euler), and the extra call arguments
    that make the same image as ours (the T5 prompt length)."""
    from diffusers import EulerDiscreteScheduler

    if "FlowMatch" not in type(pipe.scheduler).__name__:
        pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    tokenizer_2 = getattr(pipe, "tokenizer_2", None)
    if tokenizer_2 is not None and "T5" in type(tokenizer_2).__name__:
        return {"max_sequence_length": min(512, int(tokenizer_2.model_max_length))}
    return {}


def core_runner(root: str, device: str, ram_cache_gb: float | None = None):
    from invoke_core.compile import compile_canvas
    from invoke_core.engine import Engine
    from invoke_core.types import Bounds, CanvasDocument, GenerationParams

    engine = Engine(root=root, device=device, ram_cache_gb=ram_cache_gb)

    def load(model: str):
        return engine.cache.get(engine.registry.get(model), engine.device)

    def run(job: dict) -> np.ndarray:
        params = GenerationParams(
            prompt=job["prompt"], model=job["model"], steps=job["steps"], seed=job["seed"], scheduler="euler", cfg_scale=job["cfg"]
        )
        request = compile_canvas(CanvasDocument(Bounds(0, 0, job["size"], job["size"]), (), params))
        return engine.run(request)[0].image

    return load, run


def _minor_faults() -> int:
    """Page faults of the whole process so far (fresh memory the kernel had to map and zero)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def serve(load, run, load_s: float, in_thread: bool) -> int:
    """Answer jobs from stdin; with `in_thread` each job runs on one long-lived worker thread (as the
    server's queue worker does), the main thread only relaying."""
    jobs: queue.Queue = queue.Queue()
    done: queue.Queue = queue.Queue()

    def timed(job: dict) -> dict:
        faults, cpu, t0 = _minor_faults(), time.process_time(), time.perf_counter()
        pixels = run(job)
        seconds = time.perf_counter() - t0
        cpu_s = time.process_time() - cpu  # all threads' CPU time: the work done, less the waiting
        digest = hashlib.sha256(np.ascontiguousarray(pixels)).hexdigest()
        return {"seconds": seconds, "cpu_s": cpu_s, "digest": digest, "page_faults": _minor_faults() - faults}

    def answer(message: dict) -> dict:
        if "load" in message:
            t0 = time.perf_counter()
            load(message["load"])
            return {"load_s": time.perf_counter() - t0}
        return timed(message)

    def worker() -> None:
        while (message := jobs.get()) is not None:
            try:
                done.put(answer(message))
            except Exception as exc:  # the parent reports it; the child stays up for the other models
                done.put({"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"})

    thread = threading.Thread(target=worker, daemon=True) if in_thread else None
    if thread:
        thread.start()
    print(json.dumps({"ready": True, "load_s": load_s}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            break
        jobs.put(json.loads(line))
        if not thread:
            jobs.put(None)
            worker()
        print(json.dumps(done.get()), flush=True)
    if thread:
        jobs.put(None)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=["raw", "core"])
    parser.add_argument("--root", help="core: the data root holding the models")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tuned-heap", action="store_true", help="raw: with invoke_core.allocator's heap settings")
    parser.add_argument("--ram-cache-gb", type=float, default=None, help="core: the model cache's RAM budget")
    parser.add_argument("--in-thread", action="store_true", help="run the jobs on a worker thread, as the server does")
    args = parser.parse_args()

    from invoke_core.quiet import quiet_libraries

    quiet_libraries()
    t0 = time.perf_counter()
    load, run = raw_runner(args.device, args.tuned_heap) if args.side == "raw" else core_runner(args.root, args.device, args.ram_cache_gb)
    return serve(load, run, time.perf_counter() - t0, args.in_thread)


if __name__ == "__main__":
    sys.exit(main())
