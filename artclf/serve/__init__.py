"""Using a trained model: artclf.predict(...) and python -m artclf.predict

  trained_model  a workdir's best checkpoint, loaded and compiled once
  predict        labels and probabilities for paths, pictures and arrays; the CLI's work
  gradcam        where each head looked (Grad-CAM overlays)
"""
