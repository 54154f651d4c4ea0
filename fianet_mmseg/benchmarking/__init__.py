"""Measuring FIANet: timed steps, speed-up switches, synthetic inputs, per-part profiles.

The work of ``tools/analysis_tools/benchmark.py`` and ``profile_step.py``:

* :mod:`.settings`: a run's settings and the config they give (speed-up switches,
  random weights, mixed precision);
* :mod:`.inputs`: synthetic batches in the data loader's format (built-in
  expressions, decoupled and tokenised, or random word pieces);
* :mod:`.timing`: timed steps (wall and CPU time, page faults), statistics, peak
  memory;
* :mod:`.runs`: one path timed, paths compared (in processes or interleaved),
  a baseline model given from outside (``--baseline FILE.py:FACTORY``), the
  text pipeline timed;
* :mod:`.profiling`: one training step's self CPU time split by model part;
* :mod:`.data_path`: the GPU data path measured (``gpu_check.sh``'s training runs:
  samples/s and data-wait share; the device black boxes against the reference's).
* :mod:`.scene`: whole-scene inference measured (``benchmark_scene.py``: peak memory
  against the scene's size, the streamed path's overhead over plain model calls).
"""
