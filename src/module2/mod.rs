//! Module II: projection head, Student's t mixture MAP-EM, self-paced losses (SPEC §5–§11).

pub mod losses;
pub mod projection;
