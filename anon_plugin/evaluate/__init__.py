"""``anon-plugin evaluate``: measure anonymization the way the seed paper does, every fill method side by side.

One module per job:

- :mod:`.protocol`  which images are gallery and probes (labels.csv, identities, splits)
- :mod:`.variants`  every (method, strength) of one photo from one run of the shared pipeline stages
- :mod:`.features`  what the judges see: embeddings, FID features, attributes, HOG detection
- :mod:`.metrics`   pure numpy metrics: identification, FID, KID, SSIM, PSNR, thresholds
- :mod:`.store`     the per-(image, method, strength, seed) cache in OUT_DIR
- :mod:`.calibrate` FaceNet's threshold at 0.1% false accepts on the train split
- :mod:`.run`       the whole evaluation: jobs, workers, aggregation, outputs
- :mod:`.report`    results.md and examples.png
- :mod:`.command`   the click command

docs/evaluation.md states the protocol and every metric.
"""
