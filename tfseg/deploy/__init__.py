"""On-device TensorRT builder and runner for Jetson TX2 / Xavier (see README.md in this folder).

These files import nothing of tfseg, TensorFlow or Keras and use Python 3.6 syntax: copy the folder
to the board and run ``build_engine.py`` / ``run_engine.py`` as scripts.
"""
