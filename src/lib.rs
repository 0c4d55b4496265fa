//! nnbundle
