def test_unknown_v1_path_answers_in_the_error_envelope(client):
    response = client.get("/v1/nope")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}
    assert response["X-Request-ID"]
