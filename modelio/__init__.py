"""Model (de)serialisation: skops with a fixed set of trusted types."""
