"""The owner's changes in the browser: edit with a preview, rename, commit and delete, through
the same domain code (and checks) as the API."""

from __future__ import annotations

from tests.metadata.helpers import Api, push_latest, repository_of
from tests.metadata.web_helpers import Browser, committed_image


async def test_the_owner_edits_description_and_narrative_and_the_api_sees_it(api: Api) -> None:
    image = await api.create_image("edited", description="old", narrative="old text")
    browser = Browser(api.client)
    await browser.sign_in(api.token)
    form = await browser.page(f"/im/{image['id']}/edit")
    assert 'value="old"' in form and "old text</textarea>" in form
    status, _, location = await browser.post(
        f"/im/{image['id']}/edit",
        {"name": "edited", "description": "new", "narrative": "# New\r\n\r\n- [ ] todo",
         "action": "save"},
    )  # fmt: skip
    assert status == 303 and location == f"/im/{image['id']}"
    after = await api.ok("GET", f"/images/{image['id']}")
    assert after["description"] == "new"
    page = await browser.page(location)
    assert "<h1>New</h1>" in page and 'type="checkbox"' in page


async def test_preview_renders_the_narrative_without_saving_it(api: Api) -> None:
    image = await api.create_image("previewed", narrative="kept")
    browser = Browser(api.client)
    await browser.sign_in(api.token)
    await browser.get(f"/im/{image['id']}/edit")
    status, page, _ = await browser.post(
        f"/im/{image['id']}/edit",
        {"name": "previewed", "description": "", "narrative": "| a |\n|---|\n| *b* |",
         "action": "preview"},
    )  # fmt: skip
    assert status == 200 and "<td><em>b</em></td>" in page
    assert "| *b* |</textarea>" in page  # the text being edited stays in the form
    # The script's preview endpoint answers the same HTML as a fragment.
    status, fragment, _ = await browser.post(
        f"/im/{image['id']}/preview", {"narrative": "~~gone~~"}, csrf_from=f"/im/{image['id']}/edit"
    )
    assert status == 200 and fragment.strip() == "<p><s>gone</s></p>"
    assert (await api.ok("GET", f"/images/{image['id']}"))["description"] == ""
    assert "kept" in await browser.page(f"/im/{image['id']}")


async def test_renaming_keeps_the_id_and_a_taken_name_is_a_conflict_shown_in_the_form(
    api: Api,
) -> None:
    image = await api.create_image("before")
    await api.create_image("taken")
    browser = Browser(api.client)
    await browser.sign_in(api.token)
    await browser.get(f"/im/{image['id']}/edit")
    status, page, _ = await browser.post(
        f"/im/{image['id']}/edit", {"name": "taken", "description": "d", "narrative": "n"}
    )
    assert status == 409 and "already exists" in page and 'value="taken"' in page
    status, _, _ = await browser.post(
        f"/im/{image['id']}/edit", {"name": "bad name!", "description": "", "narrative": ""},
        csrf_from=f"/im/{image['id']}/edit",
    )  # fmt: skip
    assert status == 400
    status, _, _ = await browser.post(
        f"/im/{image['id']}/edit", {"name": "after", "description": "", "narrative": ""},
        csrf_from=f"/im/{image['id']}/edit",
    )  # fmt: skip
    assert status == 303
    assert (await api.ok("GET", f"/images/{image['id']}"))["fullName"] == "tester/after"


async def test_commit_from_the_page_pins_the_pushed_image(api: Api) -> None:
    image = await api.create_image("to-commit")
    browser = Browser(api.client)
    await browser.sign_in(api.token)
    status, page, _ = await browser.post(
        f"/im/{image['id']}/commit", {}, csrf_from=f"/im/{image['id']}"
    )
    assert status == 400 and "nothing was pushed" in page
    digest, _ = await push_latest(api.client, repository_of(image), [b"x" * 10], api.admin_basic)
    status, _, _ = await browser.post(
        f"/im/{image['id']}/commit", {}, csrf_from=f"/im/{image['id']}"
    )
    assert status == 303
    assert (await api.ok("GET", f"/images/{image['id']}"))["digest"] == digest


async def test_delete_asks_for_confirmation_first(api: Api) -> None:
    image = await committed_image(api, "doomed")
    browser = Browser(api.client)
    await browser.sign_in(api.token)
    confirm = await browser.page(f"/im/{image['id']}/delete")
    assert "cannot be undone" in confirm
    assert (await api.call("GET", f"/images/{image['id']}")).status == 200  # not yet
    status, _, _ = await browser.post(f"/im/{image['id']}/delete", {})
    assert status == 400  # not confirmed
    status, _, location = await browser.post(
        f"/im/{image['id']}/delete", {"confirm": image["id"]}, csrf_from=f"/im/{image['id']}/delete"
    )
    assert status == 303 and location == "/accounts/tester"
    assert (await api.call("GET", f"/images/{image['id']}")).status == 404
    assert (await browser.get(f"/im/{image['id']}"))[0] == 404


async def test_a_reader_who_is_not_the_owner_may_not_change_the_image(api: Api) -> None:
    await api.ok("POST", "/workspaces", json_body={"name": "open", "org": "tester",
                                                    "public": True})  # fmt: skip
    image = await api.create_image("theirs", workspace="tester/open", description="same")
    _, other_token = await api.new_account("reader")
    browser = Browser(api.client)
    await browser.sign_in(other_token)
    page = await browser.page(f"/im/{image['id']}")
    assert "/edit" not in page and "/delete" not in page
    assert (await browser.get(f"/im/{image['id']}/edit"))[0] == 403
    for path, form in ((f"/im/{image['id']}/edit", {"name": "mine", "description": "x",
                                                     "narrative": ""}),
                       (f"/im/{image['id']}/delete", {"confirm": image["id"]}),
                       (f"/im/{image['id']}/commit", {})):  # fmt: skip
        status, _, _ = await browser.post(path, form, csrf_from="/")
        assert status == 403, path
    assert (await api.ok("GET", f"/images/{image['id']}"))["description"] == "same"
