"""Chapter 10, Multimodal deep learning: the code the notebooks import.

Modules are imported on demand (``from dldna.chapter_10.clip import CLIP``) so that
importing the package stays cheap:

* ``losses``: contrastive_loss (CLIP), ClipLoss, info_nce, nt_xent, triplet_loss
* ``metrics``: recall_at_k, recall_at_k_from_scores (cross-modal retrieval)
* ``vit``: ViTConfig, PatchEmbed, VisionTransformer, random_masking, patchify (10.5)
* ``clip``: CLIPConfig, CLIP, zero_shot_classifier, zero_shot_predict (10.6)
* ``perceiver``: PerceiverConfig, Perceiver, FullSelfAttentionClassifier, measure_cost
* ``fusion``: EarlyFusion, LateFusion, GatedFusion (10.3.4)
"""
