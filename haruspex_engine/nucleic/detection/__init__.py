"""Detection, the first half of CryoREAD: map preprocessing, the two UNet3+ stages (PyTorch), box stitching and
the detect-na command. Shares only the class names and the summary reader with building."""
