"""The Gradio app (a Hugging Face Space): `build_demo` in `space.app`, handlers in `space.handlers`.

Importing this package loads neither gradio nor a model.
"""
