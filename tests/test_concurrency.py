"""Many clients at once: every response carries its own request's body."""

import concurrent.futures
import os

import requests


def echo_many(url, count):
    with requests.Session() as session:
        for i in range(count):
            body = os.urandom(1 + (i * 7919) % 200_000)
            response = session.post(url, data=body, timeout=60)
            assert response.status_code == 200
            assert response.content == body


def test_parallel_clients_get_their_own_bodies(basic):
    urls = [basic.url("/echo"), basic.url("/pool/echo"), basic.url("/unbuffered/echo"), basic.url("/tcp/echo")] * 2
    with concurrent.futures.ThreadPoolExecutor(len(urls)) as pool:
        for future in [pool.submit(echo_many, url, 15) for url in urls]:
            future.result(timeout=120)
