//! Everything before the first image: readers, preprocessing, rasterisation, simulation (SPEC §2).
