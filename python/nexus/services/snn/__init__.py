"""The SNN analysis service: spiking-network predictions (Brian2 reference, BindsNET on torch)."""
