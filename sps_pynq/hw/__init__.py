"""The hardware/software interface, defined once: build parameters, descriptor, weight layout, registers."""
