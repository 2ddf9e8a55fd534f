"""Views a typical site has: a CSRF-protected form, an upload, a page behind login, and one that shows its URLs."""

import hashlib

from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse

from .models import Note


def notes(request):
    """GET lists the notes with a form; POST (CSRF-checked) adds one, then redirects (POST/redirect/GET)."""
    if request.method == "POST":
        Note.objects.create(text=request.POST["text"])
        return redirect("notes")
    return render(request, "notes/list.html", {"notes": Note.objects.order_by("id")})


def upload(request):
    """GET shows the form; POST stores the file under MEDIA_ROOT and describes what was stored."""
    if request.method != "POST":
        return render(request, "notes/upload.html")
    uploaded = request.FILES["file"]
    digest = hashlib.sha256()
    size = 0
    for chunk in uploaded.chunks():
        digest.update(chunk)
        size += len(chunk)
    uploaded.seek(0)
    name = default_storage.save("uploads/" + uploaded.name, uploaded)
    return JsonResponse(
        {
            "name": name,
            "size": size,
            "sha256": digest.hexdigest(),
            "url": default_storage.url(name),
            "in_memory": uploaded.__class__.__name__ == "InMemoryUploadedFile",
        }
    )


@login_required
def private(request):
    return render(request, "notes/private.html")


def whereami(request):
    """What Django makes of the request it got through nginx: host, scheme, prefix, and the URLs it generates."""
    return JsonResponse(
        {
            "script_name": request.META.get("SCRIPT_NAME"),
            "path": request.path,
            "path_info": request.path_info,
            "host": request.get_host(),
            "is_secure": request.is_secure(),
            "absolute_uri": request.build_absolute_uri(),
            "reverse_notes": reverse("notes"),
            "static_css": static("admin/css/base.css"),
            "admin_login": reverse("admin:login"),
        }
    )
