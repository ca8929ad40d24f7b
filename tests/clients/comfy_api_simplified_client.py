"""Drives a running `omnigen serve` with the PyPI client comfy-api-simplified, exactly as its users do.

Uploads an image, queues LoadImage -> SaveImage through the client's workflow wrapper, waits on the
WebSocket, downloads the saved image(s) through /view, and writes them to OUT_DIR under the names the
server gave. Prints one JSON line describing what it did. Run by tests/third_party_client.rs.

usage: comfy_api_simplified_client.py URL INPUT_PNG OUT_DIR
"""

import json
import sys
from pathlib import Path

from comfy_api_simplified import ComfyApiWrapper, ComfyWorkflowWrapper

WORKFLOW = {
    "1": {
        "class_type": "LoadImage",
        "inputs": {"image": "placeholder.png"},
        "_meta": {"title": "Load"},
    },
    "2": {
        "class_type": "SaveImage",
        "inputs": {"images": ["1", 0], "filename_prefix": "placeholder"},
        "_meta": {"title": "Save"},
    },
}


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    url, input_png, out_dir = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    api = ComfyApiWrapper(url)

    # The catalogue must list the nodes the workflow uses.
    for node in ("LoadImage", "SaveImage"):
        info = api.get_object_info(node)
        if node not in info:
            raise SystemExit(f"/object_info/{node} does not describe {node}: {info}")

    uploaded = api.upload_image(input_png)
    workflow = ComfyWorkflowWrapper(WORKFLOW)
    image = f"{uploaded['subfolder']}/{uploaded['name']}" if uploaded["subfolder"] else uploaded["name"]
    workflow.set_node_param("Load", "image", image)
    workflow.set_node_param("Save", "filename_prefix", "third_party")

    images = api.queue_and_wait_images(workflow, "Save")
    if not images:
        raise SystemExit("the client downloaded no image")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in images.items():
        (out_dir / name).write_bytes(data)
    print(json.dumps({"uploaded": uploaded, "images": sorted(images)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
