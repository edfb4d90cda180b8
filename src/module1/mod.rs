//! Module I: ViT masked image modelling + contrastive learning + uncertainty weighting (SPEC §4).
