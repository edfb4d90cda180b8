//! Layers built on the tape and training utilities (Linear, LayerNorm, BatchNorm, attention, Adam, EMA, parameter store).
