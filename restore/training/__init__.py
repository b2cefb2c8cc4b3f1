"""Training: the loop of `restore train` and `restore finetune` (`loop`: settings, run state,
checkpoints, export), where batches come from (`sources`), torchrun (`distributed`) and the
MNIST stacked denoising autoencoders' greedy pretraining (`sdae`)."""

from restore.training.loop import TrainConfig, train

__all__ = ["TrainConfig", "train"]
