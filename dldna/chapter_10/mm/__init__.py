"""Chapter 10's cross-attention ablation study: the attention versions, training and evaluation."""
