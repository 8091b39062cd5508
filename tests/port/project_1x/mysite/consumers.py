"""The getting-started consumers from the Channels 1.x docs: an echo that goes through a Group."""

from channels import Group


def ws_connect(message):
    message.reply_channel.send({"accept": True})
    Group("echo").add(message.reply_channel)


def ws_message(message):
    # Every frame goes to the whole "echo" group, so it comes back through the channel layer.
    Group("echo").send({"text": message.content["text"]})


def ws_disconnect(message):
    Group("echo").discard(message.reply_channel)
