"""The app boots, answers in the envelope, and documents itself."""


def test_unknown_v1_path_answers_in_the_error_envelope(client):
    response = client.get("/v1/nope")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}
    assert response["X-Request-ID"]


def test_the_openapi_schema_documents_the_api_and_both_key_schemes(client):
    response = client.get("/v1/openapi.json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    schema = response.json()
    assert schema["info"]["title"] == "LeadLex API"
    assert {"/v1/webhooks", "/v1/webhooks/{endpoint_id}"} <= set(schema["paths"])
    assert set(schema["paths"]["/v1/webhooks"]) >= {"get", "post"}
    schemes = schema["components"]["securitySchemes"]
    assert schemes["ApiKeyBearer"]["scheme"] == "bearer" and schemes["ApiKeyBasic"]["scheme"] == "basic"


def test_the_browsable_docs_page_renders(client):
    response = client.get("/v1/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()
