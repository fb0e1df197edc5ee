import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TFSEG_QUIET", "1")
# One TensorFlow thread per process (the test workers and the programs they start inherit it): the
# suite runs two workers on two cores, and TF's default of a thread pool per core in each of them
# oversubscribes the CPU. Eight zoo contracts with -n 2, interleaved runs on the 2-core Zen 3:
# 180 and 178 s with the defaults, 165 and 161 s with one thread (user CPU 318/315 -> 289/272 s).
# Programs that choose their threads (tfseg.benchmark --threads) still set their own.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
