"""Pictures from anywhere: decoding, HTTP(S) and S3 fetching."""
