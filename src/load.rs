//! Data in: loaders for the formats training data comes in (`.npy`, CSV with a header and a
//! label column, MNIST's IDX), each fallible with a [`LoadError`] naming the file and the line
//! or byte offset at fault.
