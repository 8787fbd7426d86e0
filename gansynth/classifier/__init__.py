"""The ConvNet classifier: training by epochs, prediction, features."""
