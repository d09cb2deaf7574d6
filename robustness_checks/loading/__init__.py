"""Loading what a spec names: factories, models, weights, data sets and the device."""
