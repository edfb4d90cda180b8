//! The tape: reverse-mode automatic differentiation over ndarray (SPEC §17).
