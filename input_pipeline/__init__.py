"""Dataset readers (plain Python + numpy) and the tf.data training pipeline."""
