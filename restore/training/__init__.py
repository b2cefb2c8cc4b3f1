"""Training: the loop of `restore train` and `restore finetune` (`loop`: settings, run state,
checkpoints, export), where batches come from (`sources`), torchrun (`distributed`), the
MNIST stacked denoising autoencoders' greedy pretraining (`sdae`) and the render buffers'
prefilter (`aux_prefilter`)."""

from restore.training.loop import TrainConfig, train

__all__ = ["TrainConfig", "train"]
