//! The affected-set property on generated configs.
